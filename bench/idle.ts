/**
 * #9: an idle daemon. A real `circuit start --no-mount` and, as the baseline, a bare node
 * process holding one TCP listener on loopback, both started together and left alone over the
 * same window (30 s; quick 3 s) after a settling pause; RSS (VmRSS, sampled each second, the
 * largest seen) and CPU% (utime+stime from /proc/PID/stat over the window).
 */
import { spawn } from 'node:child_process';
import { cpuSecondsOf, firstLine, round, rssOf, sleep, spawnDaemon, stopChild, type Measure } from './util';

const BARE = "const s=require('net').createServer().listen(0,'127.0.0.1',()=>console.log(s.address().port))";

export async function benchIdle(opts: { quick: boolean }): Promise<Measure[]> {
  const windowMs = opts.quick ? 3_000 : 30_000;
  const settleMs = opts.quick ? 500 : 2_000;
  const daemon = await spawnDaemon(['--no-mount']);
  const bare = spawn(process.execPath, ['-e', BARE], { stdio: ['ignore', 'pipe', 'pipe'] });
  try {
    await firstLine(bare);
    await sleep(settleMs);
    const pids = { d: daemon.pid, b: bare.pid! };
    const cpu0 = { d: cpuSecondsOf(pids.d), b: cpuSecondsOf(pids.b) };
    const rss = { d: 0, b: 0 };
    const steps = Math.round(windowMs / 1000);
    for (let i = 0; i < steps; i++) {
      await sleep(windowMs / steps);
      rss.d = Math.max(rss.d, rssOf(pids.d));
      rss.b = Math.max(rss.b, rssOf(pids.b));
    }
    const secs = windowMs / 1000;
    const cpu = {
      d: ((cpuSecondsOf(pids.d) - cpu0.d) / secs) * 100,
      b: ((cpuSecondsOf(pids.b) - cpu0.b) / secs) * 100,
    };
    const mb = (x: number) => round(x / 1e6, 1);
    const extra = rss.d - rss.b;
    return [
      {
        measure: '#9 idle daemon RSS',
        value: mb(rss.d),
        unit: 'MB',
        baseline: mb(rss.b),
        ratio: round(rss.d / rss.b, 3),
        target: '≤ +30 MB',
        met: extra <= 30e6,
        note: `+${mb(extra)} MB over a bare node TCP listener; largest VmRSS seen over ${secs} s (circuit start --no-mount)`,
      },
      {
        measure: '#9 idle daemon CPU',
        value: round(cpu.d, 3),
        unit: '% of a core',
        baseline: round(cpu.b, 3),
        target: '≤ 0.2%',
        met: cpu.d <= 0.2,
        note: `utime+stime over ${secs} s (clock tick 10 ms: resolution ${round(1 / secs, 3)}%)`,
      },
    ];
  } finally {
    await stopChild(bare);
    await daemon.stop();
  }
}
