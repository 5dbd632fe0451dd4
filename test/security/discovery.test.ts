import t from 'tap';
import * as dgram from 'node:dgram';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { randomBytes } from 'node:crypto';
import { startServer, cli, eventually } from '../helpers/daemon';
import { sealDatagram } from '../../src/cluster/discovery-mac';
import { loadKey } from '../../src/cluster/keys';

/**
 * Issue 6: forged discovery datagrams are ignored. A keyed daemon bound to 127.0.0.1 runs
 * `--discover GROUP:PORT` (its multicast interface is then lo, the address it is bound to). We
 * send datagrams by unicast to 127.0.0.1:PORT, where its discovery socket listens, announcing
 * servers at packet addresses we watch: a join attempt would show as membership datagrams
 * arriving there. A valid announcement is followed by a join attempt (so the watch works); a
 * forged, altered, unsigned, stale or replayed one is not.
 */
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'circuit-sec-disc-'));
t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A UDP socket on 127.0.0.1 that counts what arrives. */
async function watcher(): Promise<{ port: number; count: () => number; sock: dgram.Socket; replies: Buffer[] }> {
  const sock = dgram.createSocket('udp4');
  const replies: Buffer[] = [];
  sock.on('message', (b) => replies.push(b));
  await new Promise<void>((r) => sock.bind(0, '127.0.0.1', () => r()));
  return { port: sock.address().port, count: () => replies.length, sock, replies };
}

async function freeUdpPort(): Promise<number> {
  const s = dgram.createSocket('udp4');
  await new Promise<void>((r) => s.bind(0, '127.0.0.1', () => r()));
  const p = s.address().port;
  s.close();
  return p;
}

const announce = (port: number) =>
  Buffer.from(JSON.stringify({ origin: 'server', id: 'X' + randomBytes(8).toString('hex'), url: `circuit://127.0.0.1:${port}/4242/Q${randomBytes(8).toString('hex')}` }));

t.test('forged discovery datagrams are ignored; a valid one is acted on once', async (t) => {
  const keyFile = path.join(dir, 'key');
  fs.writeFileSync(keyFile, (await cli(null, ['keygen'])).stdout, { mode: 0o600 });
  const key = loadKey(keyFile);
  const wrong = randomBytes(64);
  const dport = await freeUdpPort();
  const env = { CIRCUIT_HMAC: keyFile };
  const d = await startServer(['--no-mount', '-a', '127.0.0.1:0', '--discover', `239.255.77.77:${dport}`], { env });
  t.teardown(() => d.stop());
  await eventually(() => /Discovering servers on 239\.255\.77\.77:\d+ via 127\.0\.0\.1/.test(d.stderr()));

  const sender = await watcher(); // also where answers to client queries would come
  t.teardown(() => sender.sock.close());
  const send = (b: Buffer) => new Promise<void>((r) => sender.sock.send(b, dport, '127.0.0.1', () => r()));

  // forged announcements, each for its own watched address
  const forged: Array<[string, (port: number) => Buffer]> = [
    ['signed with another key', (p) => sealDatagram(wrong, announce(p), Date.now())],
    ['unsigned (keyless mode)', (p) => sealDatagram(null, announce(p), Date.now())],
    ['stale: signed 60 s ago', (p) => sealDatagram(key, announce(p), Date.now() - 60_000)],
    ['from the future: 60 s ahead', (p) => sealDatagram(key, announce(p), Date.now() + 60_000)],
    ['altered after signing', (p) => {
      const b = sealDatagram(key, announce(p), Date.now());
      b[40] ^= 0x01;
      return b;
    }],
    ['MAC cut off', (p) => sealDatagram(key, announce(p), Date.now()).subarray(0, -32)],
    ['MAC zeroed', (p) => {
      const b = sealDatagram(key, announce(p), Date.now());
      b.fill(0, b.length - 32);
      return b;
    }],
    ['keyed flag with random MAC', (p) => Buffer.concat([sealDatagram(key, announce(p), Date.now()).subarray(0, -32), randomBytes(32)])],
    ['oversized (8 KB)', (p) => sealDatagram(key, Buffer.concat([announce(p), Buffer.alloc(8000, 0x20)]), Date.now())],
  ];
  const watches: Array<[string, Awaited<ReturnType<typeof watcher>>]> = [];
  for (const [what, make] of forged) {
    const w = await watcher();
    t.teardown(() => w.sock.close());
    watches.push([what, w]);
    for (let i = 0; i < 3; i++) await send(make(w.port));
  }
  // forged client queries get no answer
  await send(sealDatagram(wrong, Buffer.from(JSON.stringify({ origin: 'client' })), Date.now()));
  await send(sealDatagram(null, Buffer.from(JSON.stringify({ origin: 'client' })), Date.now()));
  await send(sealDatagram(key, Buffer.from(JSON.stringify({ origin: 'client' })), Date.now() - 60_000));
  // and random noise
  for (let i = 0; i < 200; i++) await send(randomBytes(1 + (i * 37) % 1400));

  await sleep(3000);
  for (const [what, w] of watches) t.equal(w.count(), 0, `${what}: no join attempt`);
  t.equal(sender.count(), 0, 'forged client queries: no answer');
  t.notMatch(d.stderr(), /discovered "X|Member "X/, 'nothing was discovered or joined');

  // the check works: a valid query is answered, a valid announcement makes the daemon try to join
  await send(sealDatagram(key, Buffer.from(JSON.stringify({ origin: 'client' })), Date.now()));
  await eventually(() => sender.count() === 1, 3000);
  t.pass('a valid client query is answered');
  const valid = await watcher();
  t.teardown(() => valid.sock.close());
  const dgram1 = sealDatagram(key, announce(valid.port), Date.now());
  await send(dgram1);
  await eventually(() => valid.count() > 0, 5000);
  t.pass(`a valid announcement makes the daemon try to join (${valid.count()} datagrams at the announced address)`);
  // its join fails (nothing answers there); then a copy of the same datagram is ignored
  await eventually(() => /discovered "X[0-9a-f]{16}" at .*, but: /.test(d.stderr()), 30_000, 200);
  await sleep(500);
  const after = valid.count();
  await send(dgram1);
  await send(dgram1);
  await sleep(3000);
  t.equal(valid.count(), after, 'a replayed announcement: no new join attempt');
  t.equal((d.stderr().match(/discovered "X[0-9a-f]{16}" at /g) ?? []).length, 1, 'one discovery logged, not two');

  t.equal(d.proc.exitCode, null, 'the daemon is alive');
  const ls = await cli(d.url, ['ls', '/'], '', env);
  t.equal(ls.stdout, `/${d.id}\n`, 'and alone in its cluster');
  t.notMatch(d.stderr(), /Uncaught|TypeError|RangeError|\n\s+at /, 'no stack traces');
});
