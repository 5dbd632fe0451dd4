import type { Member } from '../../api/types';
import { AppError } from '../../kit/errors';
import { doc, type FileSpec } from '../files/control';
import { eachLine, lineCommand } from '../files/line-command';
import { snapshot } from '../files/snapshot';
import { peek } from '../files/element';
import type { Ctx } from '../files/control';

/** The verbs of the server's `ctl`, as a table: name, argument count, action. */
const CTL: Record<string, { args: number; usage: string; run(c: Ctx, args: string[]): Promise<void> }> = {
  join: { args: 1, usage: 'join URL', run: (c, [url]) => c.client.join(c.anchor, url!, c.call) },
  stop: { args: 0, usage: 'stop', run: (c) => c.client.stop(c.anchor, c.call) },
};

/** One `ctl` line: an unknown verb or a wrong argument count is refused with the line echoed. */
export async function runCtl(l: string, c: Ctx): Promise<void> {
  const [verb, ...args] = l.split(/\s+/);
  const v = Object.prototype.hasOwnProperty.call(CTL, verb!) ? CTL[verb!] : undefined;
  if (!v || v.args !== args.length) {
    const want = Object.values(CTL).map((x) => `"${x.usage}"`).join(' or ');
    throw new AppError('EINVAL', `ctl: unknown command ${JSON.stringify(l)} (want ${want})`);
  }
  await v.run(c, args);
}

/** The server element's files (docs/fs.md, `server`). */
export const server: readonly FileSpec[] = [
  peek,
  doc('the servers in this server\'s view: id, URL, state', snapshot('members', async (c) =>
    (await c.client.members(c.anchor, c.call)).map((m: Member) => `${m.id} ${m.url} ${m.state}\n`).join(''),
  )),
  doc('write "join URL" to join another cluster, "stop" to stop the daemon', lineCommand('ctl', eachLine(runCtl))),
  doc('the operations log, one JSON object a line', snapshot('log', (c) => c.client.log(c.anchor, c.call))),
  doc('the daemon\'s report: main stack, pending operations, open handles, loop delay, heap', snapshot('stk', (c) => c.client.stk(c.anchor, c.call))),
];
