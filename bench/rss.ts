/**
 * #10: memory per element. A daemon (startDaemon, as `circuit start --no-mount` runs it) in a
 * child node process started with --expose-gc, so that each reading follows two full GCs; a
 * remote client from this process makes 1 000 channels (after a first 1 000 made and scrubbed, so
 * that one-time growth of code, allocator arenas and V8 spaces is not counted per element; the
 * note gives that cold figure too), then 200 running `sleep` processes. RSS growth (and V8 heap
 * growth, in the note) per element, against the reading just before.
 */
import { spawn } from 'node:child_process';
import * as path from 'node:path';
import { connect, type RemoteClient } from '../src/client/remote';
import { firstLine, round, stopChild, type Measure } from './util';

const DAEMON_JS = path.resolve(__dirname, '../src/node/daemon.js');
const CHILD = `
const { startDaemon } = require(${JSON.stringify(DAEMON_JS)});
const fs = require('node:fs');
const varDir = fs.mkdtempSync(require('node:path').join(require('node:os').tmpdir(), 'circuit-bench-rss-'));
startDaemon({ stderr: () => {}, varDir }).then((d) => {
  console.log(d.url);
  process.on('message', (m) => {
    if (m === 'gc') { global.gc(); global.gc(); setTimeout(() => { global.gc(); process.send(process.memoryUsage()); }, 100); }
    if (m === 'stop') d.close().finally(() => { fs.rmSync(varDir, { recursive: true, force: true }); process.exit(0); });
  });
});`;

interface Mem { rss: number; heapUsed: number; external: number }

export async function benchRss(opts: { quick: boolean }): Promise<Measure[]> {
  const nChan = opts.quick ? 200 : 1000;
  const nProc = opts.quick ? 20 : 200;
  const child = spawn(process.execPath, ['--expose-gc', '-e', CHILD], { stdio: ['ignore', 'pipe', 'pipe', 'ipc'] });
  let client: RemoteClient | undefined;
  try {
    const url = await firstLine(child);
    client = await connect(url);
    const c = client;
    const id = (await c.home()).id;
    const mem = () =>
      new Promise<Mem>((resolve) => {
        child.once('message', (m) => resolve(m as Mem));
        child.send('gc');
      });
    const many = async (n: number, fn: (i: number) => Promise<unknown>) => {
      let next = 0;
      await Promise.all(Array.from({ length: 16 }, async () => {
        while (next < n) await fn(next++);
      }));
    };
    // First round, cold: code, allocator arenas and V8 spaces grow once; that growth is in the note.
    // Second round, after scrubbing the first: the memory each element keeps.
    const cold0 = await mem();
    await many(nChan, (i) => c.make(`/${id}/warm/c${i}`, 'chan', { cap: 0 }));
    const cold1 = await mem();
    await many(nChan, (i) => c.scrub(`/${id}/warm/c${i}`));
    const m0 = await mem();
    await many(nChan, (i) => c.make(`/${id}/chans/c${i}`, 'chan', { cap: 0 }));
    const m1 = await mem();
    const sleepCmd = { Env: null, Dir: '', Path: '/bin/sleep', Args: ['600'], Scrub: false };
    await many(nProc, (i) => c.make(`/${id}/procs/p${i}`, 'proc', sleepCmd));
    const m2 = await mem();
    await many(nProc, async (i) => {
      await c.signal(`/${id}/procs/p${i}`, 'KILL');
      await c.wait(`/${id}/procs/p${i}`);
      await c.scrub(`/${id}/procs/p${i}`);
    });
    const kb = (bytes: number, n: number) => round(bytes / n / 1024, 2);
    const perChan = (m1.rss - m0.rss) / nChan;
    return [
      {
        measure: `#10 RSS growth per channel (${nChan} channels)`,
        value: kb(m1.rss - m0.rss, nChan),
        unit: 'KB/chan',
        target: '≤ 5 KB',
        met: perChan <= 5 * 1024,
        note: `after a first ${nChan} were made and scrubbed; V8 heap +${kb(m1.heapUsed - m0.heapUsed, nChan)} KB/chan; RSS ${round(m0.rss / 1e6, 1)} → ${round(m1.rss / 1e6, 1)} MB after full GCs; the cold first round grew RSS ${kb(cold1.rss - cold0.rss, nChan)} KB/chan (heap ${kb(cold1.heapUsed - cold0.heapUsed, nChan)})`,
      },
      {
        measure: `#10 RSS growth per running process (${nProc} sleep)`,
        value: kb(m2.rss - m1.rss, nProc),
        unit: 'KB/proc',
        note: `V8 heap +${kb(m2.heapUsed - m1.heapUsed, nProc)} KB/proc, external +${kb(m2.external - m1.external, nProc)} KB/proc; the daemon only, not the sleep processes`,
      },
    ];
  } finally {
    await client?.disconnect().catch(() => {});
    if (child.connected) child.send('stop');
    await stopChild(child, 'SIGTERM', 5000);
  }
}
