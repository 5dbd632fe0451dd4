/**
 * Micro-benchmark of the keyed transport's crypto: what a handshake (preamble + TLS 1.3 with a PSK
 * and X25519) costs on loopback, and what a discovery datagram costs. Frame encryption is TLS's,
 * in OpenSSL; its cost shows in bench/security.ts's same-run ratios.
 */
import * as net from 'node:net';
import { randomBytes } from 'node:crypto';
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
    return [
      { measure: 'crypto.handshake.loopback.p50', value: round(times[Math.floor(times.length / 2)]!), unit: 'ms', note: `connect + preamble + TLS 1.3 (PSK, X25519), both ends in one process, ${rounds} runs` },
      { measure: 'crypto.discovery.seal+open', value: Math.round(dgRate), unit: 'datagrams/s' },
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
