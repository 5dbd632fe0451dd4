/**
 * Membership with real daemons at some scale (issue 12): 50 daemons on loopback, each started
 * with -j to the first, reach one view within 20 s of the last start; 5 of them are killed with
 * -9 and every other daemon has declared all 5 dead within 5 s. A daemon's view is read from its
 * own log (`Member X joined` / `Member X is dead`), so checking it costs no CLI process.
 */
import t from 'tap';
import * as fs from 'node:fs';
import { startServer, eventually, type Running } from '../helpers/daemon';

const N = 50;
const KILL = 5;
const started: Running[] = [];
t.teardown(() => Promise.all(started.filter((s) => s.proc.exitCode === null && s.proc.signalCode === null).map((s) => s.stop('SIGKILL'))));

/** The live members a daemon's log shows (others than itself). */
function viewOf(s: Running): Set<string> {
  const live = new Set<string>();
  for (const m of s.stderr().matchAll(/Member "(X[0-9a-f]{16})" (joined|is dead|left)/g)) {
    if (m[2] === 'joined') live.add(m[1]!);
    else live.delete(m[1]!);
  }
  return live;
}

function rssMb(pid: number): number {
  try {
    const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
    return Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0) / 1024;
  } catch {
    return 0;
  }
}

t.test(`membership: ${N} daemons on loopback reach one view, and agree on ${KILL} kill -9s`, async (t) => {
  const first = await startServer(['--no-mount']);
  started.push(first);
  // ten at a time: 50 node processes starting at once on two cores mostly wait for each other
  for (let i = 1; i < N; i += 10) {
    const batch = await Promise.all(Array.from({ length: Math.min(10, N - i) }, () => startServer(['--no-mount', '-j', first.url])));
    started.push(...batch);
  }
  const lastStart = Date.now();
  const everyone = new Set(started.map((s) => s.id));
  const complete = (s: Running) => {
    const v = viewOf(s);
    return v.size === N - 1 && [...everyone].every((id) => id === s.id || v.has(id));
  };
  await eventually(() => started.every(complete), 20_000, 200).catch(() => {});
  const viewMs = Date.now() - lastStart;
  const incomplete = started.filter((s) => !complete(s));
  t.same(incomplete.map((s) => `${s.id}: ${viewOf(s).size + 1} members`), [], `one view of ${N} at every daemon, ${viewMs} ms after the last start`);
  const rss = started.map((s) => rssMb(s.proc.pid!));
  t.comment(`daemon RSS: median ${rss.sort((a, b) => a - b)[N >> 1]!.toFixed(0)} MB, max ${rss[N - 1]!.toFixed(0)} MB`);

  const victims = started.slice(N - KILL);
  const rest = started.slice(0, N - KILL);
  const killedAt = Date.now();
  await Promise.all(victims.map((v) => v.stop('SIGKILL')));
  const agree = (s: Running) => victims.every((v) => !viewOf(s).has(v.id));
  await eventually(() => rest.every(agree), 5_000, 100).catch(() => {});
  const agreeMs = Date.now() - killedAt;
  const behind = rest.filter((s) => !agree(s));
  t.same(behind.map((s) => s.id), [], `all ${N - KILL} others declared the ${KILL} dead within ${agreeMs} ms`);
  t.ok(rest.every((s) => viewOf(s).size === N - KILL - 1), 'and nobody else');
});
