/**
 * #7: wall time of the spawned CLI, `circuit peek /Xid` and `circuit ls /` (node
 * dist/src/cli/main.js … -d URL) against an in-process daemon, vs `node -e 0`; runs interleaved,
 * medians compared. Where the time goes: the same node loading main.js and the dialling path
 * (cli/dial.js) without running a command (module load), and loading commander and msgpackr alone, each against `node -e 0`.
 */
import { startDaemon } from '../src/node/daemon';
import { CLI_MAIN, CLI_DIAL, median, round, run, versus, type Measure } from './util';

export async function benchCli(opts: { quick: boolean }): Promise<Measure[]> {
  const n = opts.quick ? 3 : 20;
  const daemon = await startDaemon({ stderr: () => {} });
  try {
    const id = daemon.server.id;
    const node = process.execPath;
    const req = (m: string) => `require(${JSON.stringify(m)})`;
    const cases: Array<{ key: string; args: string[] }> = [
      { key: 'base', args: ['-e', '0'] },
      { key: 'peek', args: [CLI_MAIN, 'peek', `/${id}`, '-d', daemon.url] },
      { key: 'ls', args: [CLI_MAIN, 'ls', '/', '-d', daemon.url] },
      // main.js loads the dialling path (dial → remote client → session → msgpackr) lazily; load both.
      { key: 'load', args: ['-e', `${req(CLI_MAIN)};${req(CLI_DIAL)}`] },
      { key: 'commander', args: ['-e', req(require.resolve('commander'))] },
      { key: 'msgpackr', args: ['-e', req(require.resolve('msgpackr'))] },
    ];
    const times = new Map<string, number[]>(cases.map((c) => [c.key, []]));
    for (const c of cases) await run(node, c.args, { timeoutMs: 20_000 }); // warm the page cache
    for (let i = 0; i < n; i++) {
      for (const c of cases) times.get(c.key)!.push((await run(node, c.args, { timeoutMs: 20_000 })).ms);
    }
    const m = (k: string) => median(times.get(k)!);
    const base = m('base');
    const loadExtra = m('load') - base;
    const where =
      `module load alone (require main.js and cli/dial.js, no command) ${round(m('load'))} ms = node -e 0 + ${round(loadExtra)} ms; ` +
      `commander alone +${round(m('commander') - base)} ms, msgpackr alone +${round(m('msgpackr') - base)} ms`;
    const row = (key: string, label: string): Measure => ({
      measure: `#7 cli wall time: ${label} (median)`,
      value: round(m(key)),
      unit: 'ms',
      ...versus(m(key), round(base), '≤ 1.3×', (x) => x <= 1.3),
      note: `${n} runs each, interleaved, baseline node -e 0`,
    });
    const peek = row('peek', 'circuit peek /Xid');
    const ls = row('ls', 'circuit ls /');
    for (const r of [peek, ls]) if (!r.met) r.note += `; ${where}`;
    return [
      peek,
      ls,
      {
        measure: '#7 cli module load only: require(main.js, cli/dial.js) (median)',
        value: round(m('load')),
        unit: 'ms',
        baseline: round(base),
        ratio: round(m('load') / base, 3),
        note: `where the time goes; commander alone ${round(m('commander'))} ms, msgpackr alone ${round(m('msgpackr'))} ms`,
      },
    ];
  } finally {
    await daemon.close().catch(() => {});
  }
}
