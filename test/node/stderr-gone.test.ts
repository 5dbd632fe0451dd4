import t from 'tap';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { startServer, cli, eventually } from '../helpers/daemon';

/**
 * A daemon whose stderr goes away (the terminal or pipe it was started from closed) keeps
 * working, does not spin, and loses no line: they go to ops.log (src/node/oplog.ts). Before, the
 * EPIPE of a stderr write reached the uncaught-exception handler, whose report was written to
 * stderr again, for good: a daemon left behind this way kept a quarter of a core busy for hours.
 */
const cpuSeconds = (pid: number): number => {
  const f = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return (Number(f[11]) + Number(f[12])) / 100; // utime + stime, in clock ticks of 10 ms
};

t.test('stderr gone: the daemon answers, does not spin, and its lines go to ops.log', async (t) => {
  const d = await startServer();
  t.teardown(() => d.stop('SIGKILL'));
  d.proc.stderr!.destroy(); // the reader of the daemon's stderr goes away
  for (let i = 0; i < 3; i++) {
    const r = await cli(d.url, ['mkchan', `/${d.id}/gone${i}`, '0']); // each make writes a line to stderr
    t.equal(r.code, 0, r.stderr);
  }
  const log = path.join(d.varDir, 'ops.log');
  const says: string[] = (await eventually(() => {
    const recs = fs.readFileSync(log, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { op: string; result?: unknown });
    const s = recs.filter((r) => r.op === 'say').map((r) => String(r.result));
    return s.some((x) => x.includes('gone2')) ? s : undefined;
  }, 5000).catch(() => undefined)) ?? [];
  t.ok(says.some((x) => /stderr is gone/.test(x)), `ops.log says stderr went away: ${JSON.stringify(says)}`);
  for (let i = 0; i < 3; i++) t.ok(says.some((x) => x.includes(`/gone${i}`)), `the make line of gone${i} is in ops.log`);
  const before = cpuSeconds(d.proc.pid!);
  await new Promise((r) => setTimeout(r, 2000));
  const used = cpuSeconds(d.proc.pid!) - before;
  t.ok(used < 0.5, `idle for 2 s it used ${used.toFixed(2)} s of CPU (a loop on EPIPE keeps a core busy)`);
  const ls = await cli(d.url, ['ls', `/${d.id}`]);
  t.match(ls.stdout, /gone2/, 'and it still answers');
});
