/**
 * Issue 2's closing figures: the median wall time of a spawned `circuit peek /Xid` (N=20) beside
 * `node -e 0` (runs interleaved, so both see the same machine state), and a 1000-message
 * send/recv loop (one message in flight) through the remote client API against a daemon started
 * in this process.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as nodePath from 'node:path';
import { startDaemon } from '../src/node/daemon';
import { connect } from '../src/client/remote';
import { CLI_MAIN, median, nowMs, round, run } from './util';

export interface FoundationMeasure {
  measure: string;
  value: number;
  unit: string;
  note?: string;
}

export async function benchFoundation(opts: { quick: boolean }): Promise<FoundationMeasure[]> {
  const n = opts.quick ? 3 : 20;
  const messages = opts.quick ? 100 : 1000;
  const varDir = fs.mkdtempSync(nodePath.join(os.tmpdir(), 'circuit-bench-foundation-'));
  const daemon = await startDaemon({ stderr: () => {}, varDir });
  const out: FoundationMeasure[] = [];
  try {
    const id = daemon.server.id;
    const peekArgs = [CLI_MAIN, 'peek', `/${id}`, '-d', daemon.url];
    await run(process.execPath, ['-e', '0']);
    await run(process.execPath, peekArgs); // warm the page cache
    const peek: number[] = [];
    const base: number[] = [];
    for (let i = 0; i < n; i++) {
      base.push((await run(process.execPath, ['-e', '0'], { timeoutMs: 20_000 })).ms);
      peek.push((await run(process.execPath, peekArgs, { timeoutMs: 20_000 })).ms);
    }
    const mp = median(peek);
    const mb = median(base);
    out.push({ measure: 'circuit peek /Xid, median wall time', value: round(mp, 1), unit: 'ms', note: `N=${n}, spawned CLI` });
    out.push({ measure: 'node -e 0, median wall time', value: round(mb, 1), unit: 'ms', note: `N=${n}, same run, interleaved` });
    out.push({ measure: 'circuit peek over node -e 0', value: round(mp / mb, 2), unit: '×' });

    const client = await connect(daemon.url);
    try {
      const path = `/${id}/bench`;
      await client.make(path, 'chan', { cap: 1 });
      const msg = Buffer.from('x'.repeat(64));
      for (let i = 0; i < 20; i++) {
        await client.send(path, msg);
        await client.recv(path);
      }
      const t0 = nowMs();
      for (let i = 0; i < messages; i++) {
        await client.send(path, msg);
        const got = await client.recv(path);
        if (got.length !== msg.length) throw new Error(`message ${i} came back with ${got.length} bytes`);
      }
      const ms = nowMs() - t0;
      out.push({ measure: `${messages}-message send/recv loop, total`, value: round(ms, 1), unit: 'ms', note: '64-byte messages, cap 1, one in flight, remote client over loopback' });
      out.push({ measure: `${messages}-message send/recv loop, rate`, value: round(messages / (ms / 1000), 0), unit: 'msgs/s', note: 'one message = one send and one recv' });
    } finally {
      await client.disconnect();
    }
  } finally {
    await daemon.close();
    fs.rmSync(varDir, { recursive: true, force: true });
  }
  return out;
}
