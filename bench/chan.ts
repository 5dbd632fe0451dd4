/**
 * #5: pipelined channel messages through the client API. An in-process daemon (startDaemon) and
 * a remote client over TCP loopback to it, in this process; a channel with a large capacity;
 * WINDOW sends and WINDOW receives in flight at once until N messages have gone through. Each
 * message is two requests (send, then recv) on the session.
 *
 * Baseline, between the same two ends (one process, loopback TCP): a tiny length-prefixed echo,
 * WINDOW requests in flight, the same payload size; one request/response per message.
 */
import * as net from 'node:net';
import { connect } from '../src/client/remote';
import { nowMs, round, versus, benchDaemon, type Measure } from './util';

const WINDOW = 64;

export async function benchChan(opts: { quick: boolean }): Promise<Measure[]> {
  const sizes = [
    { label: '16 B', bytes: 16, n: opts.quick ? 2_000 : 60_000 },
    { label: '64 KiB', bytes: 64 * 1024, n: opts.quick ? 200 : 6_000 },
  ];
  const daemon = await benchDaemon();
  const client = await connect(daemon.url);
  const echo = await echoServer();
  const rows: Measure[] = [];
  try {
    const path = `/${daemon.server.id}/bench/ch`;
    await client.make(path, 'chan', { cap: 1 << 20 });
    for (const s of sizes) {
      const msg = Buffer.alloc(s.bytes, 7);
      // warm-up: JIT, socket buffers. A tenth of the timed run: with 500 messages the daemon's
      // code was still being optimized during the first half of the timed 60 000 (the same run
      // repeated went from 26-31 k to 40 k msgs/s, 2026-12-01)
      const warm = Math.max(500, Math.round(s.n / 10));
      await pipeline(warm, (m) => client.send(path, m), () => client.recv(path), msg);
      await echoLoad(echo.port, warm, msg);

      const chan = await pipeline(s.n, (m) => client.send(path, m), () => client.recv(path), msg);
      const raw = await echoLoad(echo.port, s.n, msg);
      const row: Measure = {
        measure: `#5 chan pipelined msgs/s, ${s.label}`,
        value: Math.round(chan),
        unit: 'msgs/s',
        ...versus(chan, Math.round(raw), s.bytes === 16 ? '≥ 20 000 msgs/s' : '—', () => true),
        note: `${s.n} msgs after ${warm} to warm up, ${WINDOW} sends + ${WINDOW} recvs in flight, remote client → in-process daemon; baseline: length-prefixed TCP echo, ${WINDOW} in flight`,
      };
      if (s.bytes === 16) row.met = chan >= 20_000;
      else {
        row.met = undefined;
        row.note += `; ${round((chan * s.bytes) / 1e6, 1)} MB/s through the channel`;
      }
      rows.push(row);
    }
    await client.scrub(path);
  } finally {
    await client.disconnect().catch(() => {});
    await daemon.close().catch(() => {});
    echo.server.close();
  }
  return rows;
}

/** n messages through send/recv with `window` of each in flight; resolves with messages per second. */
export async function pipeline(
  n: number, send: (m: Buffer) => Promise<void>, recv: () => Promise<Buffer>, msg: Buffer, window = WINDOW,
): Promise<number> {
  let sends = 0;
  let recvs = 0;
  let bytes = 0;
  const t0 = nowMs();
  const lanes: Promise<void>[] = [];
  for (let i = 0; i < window; i++) {
    lanes.push((async () => {
      while (sends < n) {
        sends++;
        await send(msg);
      }
    })());
    lanes.push((async () => {
      while (recvs < n) {
        recvs++;
        const m = await recv(); // not `bytes += await …`: that reads bytes before the await
        bytes += m.length;
      }
    })());
  }
  await Promise.all(lanes);
  const secs = (nowMs() - t0) / 1000;
  if (bytes !== n * msg.length) throw new Error(`chan: received ${bytes} bytes, expected ${n * msg.length}`);
  return n / secs;
}

/** A length-prefixed (u32 BE) echo server on loopback. */
async function echoServer(): Promise<{ server: net.Server; port: number }> {
  const server = net.createServer((sock) => {
    sock.setNoDelay(true);
    let buf = Buffer.alloc(0);
    sock.on('data', (c) => {
      buf = buf.length ? Buffer.concat([buf, c]) : c;
      let off = 0;
      const out: Buffer[] = [];
      while (buf.length - off >= 4) {
        const len = buf.readUInt32BE(off);
        if (buf.length - off < 4 + len) break;
        out.push(buf.subarray(off, off + 4 + len));
        off += 4 + len;
      }
      buf = buf.subarray(off);
      if (out.length) sock.write(out.length === 1 ? out[0]! : Buffer.concat(out));
    });
    sock.on('error', () => {});
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { server, port: (server.address() as net.AddressInfo).port };
}

/** n echoes of msg with WINDOW requests in flight; resolves with requests per second. */
async function echoLoad(port: number, n: number, msg: Buffer): Promise<number> {
  const sock = net.connect(port, '127.0.0.1');
  sock.setNoDelay(true);
  await new Promise<void>((r, j) => {
    sock.once('connect', r);
    sock.once('error', j);
  });
  const frame = Buffer.alloc(4 + msg.length);
  frame.writeUInt32BE(msg.length, 0);
  msg.copy(frame, 4);
  const t0 = nowMs();
  await new Promise<void>((resolve, reject) => {
    let sent = 0;
    let got = 0;
    let pending = 0; // bytes of the current response still to come
    let headLeft = 4;
    const head = Buffer.alloc(4);
    sock.on('error', reject);
    sock.on('data', (c: Buffer) => {
      let off = 0;
      while (off < c.length) {
        if (headLeft > 0) {
          const k = Math.min(headLeft, c.length - off);
          c.copy(head, 4 - headLeft, off, off + k);
          headLeft -= k;
          off += k;
          if (headLeft === 0) pending = head.readUInt32BE(0);
        }
        if (headLeft === 0) {
          const k = Math.min(pending, c.length - off);
          pending -= k;
          off += k;
          if (pending === 0) {
            got++;
            headLeft = 4;
            if (sent < n) {
              sent++;
              sock.write(frame);
            }
            if (got === n) return resolve();
          }
        }
      }
    });
    for (; sent < Math.min(WINDOW, n); ) {
      sent++;
      sock.write(frame);
    }
  });
  const secs = (nowMs() - t0) / 1000;
  sock.destroy();
  return n / secs;
}
