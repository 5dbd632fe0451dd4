import type { Entry } from '../api/types';
import { CircuitError } from '../kit/errors';
import { json, writeOut } from './io';
import { type Command, P, one, cleanPath } from './rows';
import { mkchan, send, recv, close } from './kinds/chan';
import { mkproc, stdio, signal, wait, waitall } from './kinds/proc';
import { mkdkr } from './kinds/docker';
import { mkdns, set, unset } from './kinds/dns';
import { mkatjoin, mkatleave } from './kinds/subscription';
import { join, stop, stk, suicide } from './kinds/server';

export type { Command, CommandFlags } from './rows';
export { cleanPath } from './rows';

const ls: Command = {
  name: 'ls', usage: '[-l] [--de] PATH[/...]', summary: 'list anchors (PATH/... recursively)',
  args: one, argsError: 'ls needs a glob argument',
  flags: [['-l, --long', 'show the element kind of each anchor'], ['--de, --depth', 'list children before their parent when recursing']],
  async run(c, a, f) {
    const { path, recursive } = cleanPath(a[0]);
    const lines: string[] = [];
    const walk = async (p: string) => {
      let entries: Entry[];
      try {
        entries = await c.list(p);
      } catch (e) {
        if ((e as CircuitError).code === 'ENOENT') return;
        throw e;
      }
      for (const e of entries) {
        const line = f.long ? `${(e.kind ?? '·').padEnd(15)} ${e.path}` : e.path;
        if (!f.depth) lines.push(line);
        if (recursive) await walk(e.path);
        if (f.depth) lines.push(line);
      }
    };
    await walk(path);
    if (lines.length) await writeOut(lines.join('\n') + '\n');
  },
};

const peek: Command = {
  name: 'peek', usage: 'PATH', summary: "print an element's state as JSON (null for an empty anchor)",
  args: one, argsError: 'peek needs one anchor argument', op: 'peek',
  async run(c, a) {
    await writeOut(json(await c.peek(P(a[0]))));
  },
};

const scrub: Command = {
  name: 'scrub', usage: 'PATH', summary: 'remove the element at PATH',
  args: one, argsError: 'scrub needs one anchor argument', op: 'scrub',
  async run(c, a) {
    await c.scrub(P(a[0]));
  },
};

/**
 * The command table: the generic rows above, each kind's rows from its module in
 * src/cli/kinds/, in the order `circuit help` lists them. main.ts wires them to commander.
 */
export const COMMANDS: Command[] = [
  ls, mkchan, send, recv, close, mkproc, mkdkr, mkdns, set, unset, mkatjoin, mkatleave, signal, wait, waitall, ...stdio, peek, scrub, join, stop, stk, suicide,
];
