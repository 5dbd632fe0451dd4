/**
 * #7: wall time of the spawned CLI as installed (`node bin/circuit peek /Xid -d URL`, and `ls /`)
 * against an in-process daemon, vs `node -e 0`; runs interleaved, medians compared. Where the
 * time goes, each in the same interleaving: module load alone (bin/circuit's loader, the bundle
 * with its code cache and the client modules a command loads to dial, no connection), so that
 * connect + call + exit is the difference; and the same peek from the bundle without its code
 * cache and from tsc's one-module-a-file output, which is what the bundle and the cache save.
 */
import { CLI_LAUNCH, CLI_MAIN, CLI_TSC, median, round, run, versus, benchDaemon, type Measure } from './util';

export async function benchCli(opts: { quick: boolean }): Promise<Measure[]> {
  const n = opts.quick ? 3 : 30;
  const daemon = await benchDaemon();
  try {
    const id = daemon.server.id;
    const node = process.execPath;
    const bundle = require(CLI_LAUNCH).BUNDLE as string;
    const peekArgs = ['peek', `/${id}`, '-d', daemon.url];
    // The bundle and the tsc output run on their own without bin/circuit's switch for msgpackr's
    // native decoder (launch.ts, withoutNativeDecoder), so they get it from the environment.
    const noDecoder = { MSGPACKR_NATIVE_ACCELERATION_DISABLED: 'true' };
    const cases: Array<{ key: string; args: string[]; env?: NodeJS.ProcessEnv }> = [
      { key: 'base', args: ['-e', '0'] },
      { key: 'peek', args: [CLI_MAIN, ...peekArgs] },
      { key: 'ls', args: [CLI_MAIN, 'ls', '/', '-d', daemon.url] },
      {
        key: 'load',
        args: ['-e', `const L = require(${JSON.stringify(CLI_LAUNCH)}); L.withoutNativeDecoder('peek', () => L.loadBundle()).exports.loadDial().then(() => process.exit(0))`],
      },
      { key: 'nocache', args: [bundle, ...peekArgs], env: noDecoder },
      { key: 'tsc', args: [CLI_TSC, ...peekArgs], env: noDecoder },
    ];
    const times = new Map<string, number[]>(cases.map((c) => [c.key, []]));
    const once = (c: (typeof cases)[number]) => run(node, c.args, { timeoutMs: 20_000, env: c.env });
    for (const c of cases) await once(c); // warm the page cache
    for (let i = 0; i < n; i++) {
      for (const c of cases) times.get(c.key)!.push((await once(c)).ms);
    }
    const m = (k: string) => median(times.get(k)!);
    const base = m('base');
    const how = `${n} runs each, interleaved, baseline node -e 0`;
    const where =
      `module load (bundle + code cache + client modules) node -e 0 + ${round(m('load') - base)} ms, ` +
      `connect + call + exit ${round(m('peek') - m('load'))} ms`;
    const row = (key: string, label: string): Measure => ({
      measure: `#7 cli wall time: ${label} (median)`,
      value: round(m(key)),
      unit: 'ms',
      ...versus(m(key), round(base), '≤ 1.3×', (x) => x <= 1.3),
      note: `node bin/circuit …; ${how}; ${where}`,
    });
    const info = (key: string, label: string, note: string): Measure => ({
      measure: `#7 cli ${label} (median)`,
      value: round(m(key)),
      unit: 'ms',
      baseline: round(base),
      ratio: round(m(key) / base, 3),
      note,
    });
    return [
      row('peek', 'circuit peek /Xid'),
      row('ls', 'circuit ls /'),
      info('load', 'module load only: bin/circuit loader, bundle, client modules', 'where the time goes: no connection made'),
      {
        measure: '#7 cli connect + call + exit (peek − module load, medians)',
        value: round(m('peek') - m('load')),
        unit: 'ms',
        note: 'dial, hello, peek, answer written, connection ended, exit',
      },
      info('nocache', 'peek from the bundle without its code cache', 'node dist/circuit.js …: what the code cache saves'),
      info('tsc', 'peek from the unbundled tsc output', 'node dist/src/cli/main.js …: what the bundle saves (one module a file)'),
    ];
  } finally {
    await daemon.close().catch(() => {});
  }
}
