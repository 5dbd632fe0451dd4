/**
 * #9: an idle daemon. A real `circuit start --no-mount` and, as the baseline, a bare node
 * process holding one TCP listener on loopback, both started together and left alone over the
 * same window (30 s; quick 3 s) after a settling pause; RSS (VmRSS, sampled each second, the
 * largest seen) and CPU% (utime+stime from /proc/PID/stat over the window).
 *
 * The pause (12 s; quick 0.5 s) lets the start-up's one garbage collection pass: V8's memory
 * reducer collects once some 8 s after the heap stops growing, 40-80 ms of CPU that a 30 s window
 * from 2 s after start counted as idle (0.2-0.27 %); sampled each second for a minute, a daemon
 * used 4 ticks at 8-9 s after start and none after (BENCHMARKS.md, #9).
 */
import { spawn } from 'node:child_process';
import { cpuSecondsOf, firstLine, round, rssOf, sleep, spawnDaemon, stopChild, type Measure } from './util';

const BARE = "const s=require('net').createServer().listen(0,'127.0.0.1',()=>console.log(s.address().port))";

export async function benchIdle(opts: { quick: boolean }): Promise<Measure[]> {
  const windowMs = opts.quick ? 3_000 : 30_000;
  const settleMs = opts.quick ? 500 : 12_000;
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
    // whole clock ticks (USER_HZ 100) over the window, so 6 ticks in 30 s is 0.2 % exactly
    const ticks = { d: Math.round((cpuSecondsOf(pids.d) - cpu0.d) * 100), b: Math.round((cpuSecondsOf(pids.b) - cpu0.b) * 100) };
    const cpu = {
      d: ticks.d / secs,
      b: ticks.b / secs,
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
        note: `+${mb(extra)} MB over a bare node TCP listener; largest VmRSS seen over ${secs} s from ${settleMs / 1000} s after start (circuit start --no-mount)`,
      },
      {
        measure: '#9 idle daemon CPU',
        value: round(cpu.d, 3),
        unit: '% of a core',
        baseline: round(cpu.b, 3),
        target: '≤ 0.2%',
        met: ticks.d <= 0.2 * secs,
        note: `utime+stime over ${secs} s from ${settleMs / 1000} s after start (clock tick 10 ms: resolution ${round(1 / secs, 3)}%); ticks: ${ticks.d}`,
      },
    ];
  } finally {
    await stopChild(bare);
    await daemon.stop();
  }
}
