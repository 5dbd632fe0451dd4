/**
 * #6: process start + wait through the client API: a remote client over loopback to an
 * in-process daemon makes a proc element running /bin/true and waits for its exit, one at a time;
 * the element is scrubbed outside the timed part. Baseline: child_process.spawn of /bin/true and
 * its exit event, from the same process.
 */
import { spawn } from 'node:child_process';
import { connect } from '../src/client/remote';
import { median, nowMs, quantile, round, versus, benchDaemon, type Measure } from './util';

export async function benchProc(opts: { quick: boolean }): Promise<Measure[]> {
  const n = opts.quick ? 20 : 300;
  const daemon = await benchDaemon();
  const client = await connect(daemon.url);
  try {
    const base = `/${daemon.server.id}/bench`;
    const cmd = { Env: null, Dir: '', Path: '/bin/true', Args: [], Scrub: false };
    const viaApi = async (i: number) => {
      const p = `${base}/p${i}`;
      const t0 = nowMs();
      await client.make(p, 'proc', cmd);
      await client.wait(p);
      const ms = nowMs() - t0;
      await client.scrub(p);
      return ms;
    };
    const viaSpawn = () =>
      new Promise<number>((resolve, reject) => {
        const t0 = nowMs();
        const c = spawn('/bin/true', [], { stdio: 'ignore' });
        c.on('error', reject);
        c.on('exit', () => resolve(nowMs() - t0));
      });
    for (let i = 0; i < 10; i++) {
      await viaApi(-1 - i);
      await viaSpawn();
    }
    // Interleaved so that both see the same machine state.
    const api: number[] = [];
    const raw: number[] = [];
    for (let i = 0; i < n; i++) {
      api.push(await viaApi(i));
      raw.push(await viaSpawn());
    }
    const a = median(api);
    const r = median(raw);
    return [{
      measure: '#6 proc start+wait /bin/true (median)',
      value: round(a, 3),
      unit: 'ms',
      ...versus(a, round(r, 3), '≤ 1.5×', (x) => x <= 1.5),
      note: `${n} runs, interleaved; p99 ${round(quantile(api, 0.99))} ms vs ${round(quantile(raw, 0.99))} ms`,
    }];
  } finally {
    await client.disconnect().catch(() => {});
    await daemon.close().catch(() => {});
  }
}
