/**
 * Micro-benchmark of the keyed transport's crypto: what a handshake (preamble + TLS 1.3 with a PSK
 * and X25519) costs on loopback, and what a discovery datagram costs. Frame encryption is TLS's,
 * in OpenSSL; its cost shows in bench/security.ts's same-run ratios.
 *
 * The bulk rows weigh TLS's records against the alternative of issue 10 point 7 (our own record
 * layer: one AES-GCM record per message, sealed and opened with node:crypto): CPU per round trip
 * of a 16-byte request and a 64 KiB answer (the shape of `circuit stdout`'s reads), both ends in
 * this process, over plain TCP, over TLS, and over such records; BENCHMARKS.md says what followed.
 */
import * as net from 'node:net';
import { createCipheriv, createDecipheriv, createSecretKey, randomBytes, type KeyObject } from 'node:crypto';
import { handshake } from '../src/cluster/handshake';
import { openDatagram, sealDatagram } from '../src/cluster/discovery-mac';

export interface Measure { measure: string; value: number; unit: string; note?: string }

/** Runs fn in rounds until ms have passed; returns rounds per second. */
function rate(ms: number, fn: () => void): number {
  for (let i = 0; i < 50; i++) fn(); // warm-up
  let n = 0;
  const start = process.hrtime.bigint();
  const end = start + BigInt(ms) * 1_000_000n;
  let now = start;
  while (now < end) {
    for (let i = 0; i < 16; i++) fn();
    n += 16;
    now = process.hrtime.bigint();
  }
  return n / (Number(now - start) / 1e9);
}

/** Connect + handshake over loopback, both ends in this process; resolves with the ms it took. */
async function handshakeMs(server: net.Server, port: number, key: Buffer): Promise<number> {
  const accepted = new Promise<net.Socket>((resolve, reject) => {
    server.once('connection', (sock) => handshake(sock, key, 'listener').then(resolve, reject));
  });
  const start = process.hrtime.bigint();
  const sock = await new Promise<net.Socket>((resolve, reject) => {
    const s = net.connect(port, '127.0.0.1', () => resolve(s));
    s.once('error', reject);
  });
  const [d, l] = await Promise.all([handshake(sock, key, 'dialer'), accepted]);
  const ms = Number(process.hrtime.bigint() - start) / 1e6;
  d.destroy();
  l.destroy();
  return ms;
}

/** A connected loopback pair, [dialer, listener]. */
async function loopPair(server: net.Server, port: number): Promise<[net.Socket, net.Socket]> {
  const accepted = new Promise<net.Socket>((resolve) => server.once('connection', resolve));
  const d = await new Promise<net.Socket>((resolve, reject) => {
    const s = net.connect(port, '127.0.0.1', () => resolve(s));
    s.once('error', reject);
  });
  const l = await accepted;
  d.setNoDelay(true);
  l.setNoDelay(true);
  return [d, l];
}

/** How messages cross a connection: seal (or frame) one, and cut whole ones out of what arrives. */
interface Wire {
  write(s: net.Socket, msg: Buffer): void;
  reader(onMsg: (m: Buffer) => void): (chunk: Buffer) => void;
}

/** Length-prefixed messages; `open` turns a whole record into the message. */
function lengthPrefixed(open: (rec: Buffer) => Buffer): Wire['reader'] {
  return (onMsg) => {
    let parts: Buffer[] = [];
    let have = 0;
    let need = 4;
    return (chunk) => {
      parts.push(chunk);
      have += chunk.length;
      while (have >= need) {
        const b = parts.length === 1 ? parts[0]! : Buffer.concat(parts, have);
        const len = b.readUInt32BE(0);
        if (have < 4 + len) {
          parts = [b];
          need = 4 + len;
          return;
        }
        onMsg(open(b.subarray(0, 4 + len)));
        const rest = b.subarray(4 + len);
        parts = rest.length ? [rest] : [];
        have = rest.length;
        need = 4;
      }
    };
  };
}

const plainWire: Wire = {
  write(s, msg) {
    const h = Buffer.allocUnsafe(4);
    h.writeUInt32BE(msg.length, 0);
    s.write(Buffer.concat([h, msg]));
  },
  reader: lengthPrefixed((rec) => rec.subarray(4)),
};

/**
 * One AES-128-GCM record per message (the suite TLS negotiates here): u32 length (authenticated)
 * | ciphertext | 16-byte tag, a counter nonce per direction. Both ends live in this process, so
 * one counter per socket serves the sender, one per reader the receiver.
 */
function aeadWire(key: KeyObject): Wire {
  const sent = new WeakMap<net.Socket, number>();
  const nonce = (n: number) => {
    const iv = Buffer.alloc(12);
    iv.writeUInt32BE(n, 8);
    return iv;
  };
  return {
    write(s, msg) {
      const n = sent.get(s) ?? 0;
      sent.set(s, n + 1);
      const h = Buffer.allocUnsafe(4);
      h.writeUInt32BE(msg.length + 16, 0);
      const c = createCipheriv('aes-128-gcm', key, nonce(n));
      c.setAAD(h);
      const body = c.update(msg);
      c.final();
      s.cork();
      s.write(h);
      s.write(body);
      s.write(c.getAuthTag());
      s.uncork();
    },
    reader(onMsg) {
      let n = 0;
      return lengthPrefixed((rec) => {
        const d = createDecipheriv('aes-128-gcm', key, nonce(n++));
        d.setAAD(rec.subarray(0, 4));
        d.setAuthTag(rec.subarray(rec.length - 16));
        const m = d.update(rec.subarray(4, rec.length - 16));
        d.final();
        return m;
      })(onMsg);
    },
  };
}

/** CPU µs (user + system, both ends) per round trip of a 16-byte request and a `size` answer. */
async function bulkCpuUs(pair: [net.Socket, net.Socket], wire: Wire, size: number, n: number): Promise<number> {
  const [d, l] = pair;
  const answer = Buffer.alloc(size, 7);
  const ask = Buffer.alloc(16, 1);
  l.on('data', wire.reader(() => wire.write(l, answer)));
  let left = n + 20; // the first 20 warm up
  let u0 = process.cpuUsage();
  await new Promise<void>((resolve) => {
    d.on('data', wire.reader(() => {
      if (--left === n) u0 = process.cpuUsage();
      if (left === 0) resolve();
      else wire.write(d, ask);
    }));
    wire.write(d, ask);
  });
  const u = process.cpuUsage(u0);
  d.destroy();
  l.destroy();
  return (u.user + u.system) / n;
}

/** The three ways, in alternating rounds (a busy spell falls on all), median µs per round trip. */
async function bulk(server: net.Server, port: number, key: Buffer, rounds: number, n: number): Promise<Record<'plain' | 'tls' | 'aead', number>> {
  const size = 64 * 1024;
  const aead = aeadWire(createSecretKey(randomBytes(16)));
  const runs: Record<'plain' | 'tls' | 'aead', number[]> = { plain: [], tls: [], aead: [] };
  for (let r = 0; r < rounds; r++) {
    runs.plain.push(await bulkCpuUs(await loopPair(server, port), plainWire, size, n));
    const [d, l] = await loopPair(server, port);
    const tls = await Promise.all([handshake(d, key, 'dialer'), handshake(l, key, 'listener')]);
    runs.tls.push(await bulkCpuUs(tls, plainWire, size, n));
    runs.aead.push(await bulkCpuUs(await loopPair(server, port), aead, size, n));
  }
  const median = (xs: number[]) => xs.sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
  return { plain: median(runs.plain), tls: median(runs.tls), aead: median(runs.aead) };
}

export async function benchCrypto(opts: { quick: boolean }): Promise<Measure[]> {
  const ms = opts.quick ? 300 : 2000;
  const key = randomBytes(64);
  const server = net.createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as net.AddressInfo).port;
  try {
    const rounds = opts.quick ? 30 : 300;
    const times: number[] = [];
    for (let i = 0; i < rounds; i++) times.push(await handshakeMs(server, port, key));
    times.sort((a, b) => a - b);
    const payload = Buffer.from(JSON.stringify({ Origin: 'server', Addr: 'circuit://10.0.0.1:8888/1/Q0123456789abcdef' }));
    const now = Date.now();
    const dgRate = rate(ms, () => openDatagram(key, sealDatagram(key, payload, now), now));
    const b = await bulk(server, port, key, opts.quick ? 1 : 5, opts.quick ? 200 : 2000);
    const extra = (x: number) => `${round(x - b.plain)} µs over plain TCP`;
    const bulkNote = 'CPU (both ends, one process) per round trip: 16 B request, 64 KiB answer';
    return [
      { measure: 'crypto.handshake.loopback.p50', value: round(times[Math.floor(times.length / 2)]!), unit: 'ms', note: `connect + preamble + TLS 1.3 (PSK, X25519), both ends in one process, ${rounds} runs` },
      { measure: 'crypto.discovery.seal+open', value: Math.round(dgRate), unit: 'datagrams/s' },
      { measure: 'crypto.bulk.plain', value: round(b.plain), unit: 'µs/round trip', note: `${bulkNote}, plain TCP, median of rounds` },
      { measure: 'crypto.bulk.tls', value: round(b.tls), unit: 'µs/round trip', note: `${extra(b.tls)}; TLS 1.3 records (16 KiB at most), as the keyed transport runs` },
      { measure: 'crypto.bulk.aead-records', value: round(b.aead), unit: 'µs/round trip', note: `${extra(b.aead)}; one AES-128-GCM record per message through node:crypto (the alternative)` },
    ];
  } finally {
    server.close();
  }
}

function round(x: number): number {
  return Math.round(x * 100) / 100;
}

if (require.main === module) {
  benchCrypto({ quick: process.argv.includes('--quick') }).then((r) => console.table(r), (e) => {
    console.error(e);
    process.exitCode = 1;
  });
}
