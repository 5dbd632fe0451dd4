import t from 'tap';
import * as net from 'node:net';
import { randomBytes } from 'node:crypto';
import {
  handshake, DIAL_REFUSED, MAX_HANDSHAKE_MESSAGE, PROTOCOL_VERSION, SEAL_OVERHEAD,
  type SecureSession, type Role,
} from '../../src/cluster/handshake';
import { CircuitError } from '../../src/kit/errors';
import { ManualClock } from '../../src/kit/clock';

const key = randomBytes(64);
const HELLO_MESSAGE = 4 + 38;

// ---- helpers: a listener whose handshakes queue up, raw peers, and length-prefixed frames ----

interface Listener {
  port: number;
  /** The next accepted connection's handshake result. */
  next(): Promise<{ session?: SecureSession; error?: CircuitError; sock: net.Socket }>;
}

async function listen(t: Tap, lkey: Buffer, timeoutMs = 2000): Promise<Listener> {
  const results: Array<Promise<{ session?: SecureSession; error?: CircuitError; sock: net.Socket }>> = [];
  const waiters: Array<(p: (typeof results)[number]) => void> = [];
  const sockets = new Set<net.Socket>();
  const server = net.createServer((sock) => {
    sockets.add(sock);
    sock.on('close', () => sockets.delete(sock));
    const p = handshake(sock, lkey, 'listener', { timeoutMs }).then(
      (session) => ({ session, sock }),
      (error: CircuitError) => ({ error, sock }),
    );
    const w = waiters.shift();
    if (w) w(p);
    else results.push(p);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.teardown(() => {
    for (const s of sockets) s.destroy();
    server.close();
  });
  return {
    port: (server.address() as net.AddressInfo).port,
    next: () => {
      const p = results.shift();
      return p ?? new Promise((r) => waiters.push(r)).then((x) => x as Awaited<(typeof results)[number]>);
    },
  };
}

type Tap = { teardown(fn: () => void): void };

function connect(t: Tap, port: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const s = net.connect(port, '127.0.0.1', () => resolve(s));
    s.on('error', reject);
    t.teardown(() => s.destroy());
  });
}

async function dial(t: Tap, port: number, dkey: Buffer, timeoutMs = 2000) {
  const sock = await connect(t, port);
  sock.removeAllListeners('error');
  try {
    return { session: await handshake(sock, dkey, 'dialer', { timeoutMs }), sock };
  } catch (error) {
    return { error: error as CircuitError, sock };
  }
}

/** Everything a raw socket receives until it closes. */
function collect(sock: net.Socket): Promise<Buffer> {
  const chunks: Buffer[] = [];
  sock.on('data', (c: Buffer) => chunks.push(c));
  sock.on('error', () => undefined);
  return new Promise((r) => sock.on('close', () => r(Buffer.concat(chunks))));
}

function msg(body: Buffer): Buffer {
  const h = Buffer.alloc(4);
  h.writeUInt32BE(body.length, 0);
  return Buffer.concat([h, body]);
}

function hello(role: Role, nonce = randomBytes(32), version = PROTOCOL_VERSION): Buffer {
  return Buffer.concat([Buffer.from('CRKT'), Buffer.from([version, role === 'dialer' ? 0x44 : 0x4c]), nonce]);
}

/** Reads length-prefixed frames from a socket that a session owns after the handshake. */
function frames(sock: net.Socket, session: SecureSession): { next(): Promise<Buffer> } {
  let buf = Buffer.from(session.leftover);
  const ready: Buffer[] = [];
  const waiting: Array<(b: Buffer) => void> = [];
  sock.on('data', (c: Buffer) => {
    buf = Buffer.concat([buf, c]);
    while (buf.length >= 4 && buf.length >= 4 + buf.readUInt32BE(0)) {
      const body = session.open(buf.subarray(4, 4 + buf.readUInt32BE(0)));
      buf = buf.subarray(4 + buf.readUInt32BE(0));
      const w = waiting.shift();
      if (w) w(body);
      else ready.push(body);
    }
  });
  return { next: () => (ready.length ? Promise.resolve(ready.shift()!) : new Promise((r) => waiting.push(r))) };
}

async function goodPair(t: Tap) {
  const l = await listen(t, key);
  const [d, s] = await Promise.all([dial(t, l.port, key), l.next()]);
  if (!d.session || !s.session) throw new Error(`handshake failed: ${d.error?.message} / ${s.error?.message}`);
  return { d: { session: d.session, sock: d.sock }, l: { session: s.session, sock: s.sock } };
}

// ---- behaviours ----

t.test('handshake: matching keys exchange sealed frames both ways', async (t) => {
  const { d, l } = await goodPair(t);
  // the listener writes at once, before the dialer has attached its reader: nothing may be lost
  const fromListener = [Buffer.from('hello dialer'), randomBytes(65536), Buffer.alloc(0)];
  for (const f of fromListener) l.sock.write(msg(l.session.seal(f)));
  const dIn = frames(d.sock, d.session);
  const lIn = frames(l.sock, l.session);
  const fromDialer = [Buffer.from('hello listener'), randomBytes(100_000)];
  for (const f of fromDialer) d.sock.write(msg(d.session.seal(f)));
  for (const f of fromListener) t.same(await dIn.next(), f);
  for (const f of fromDialer) t.same(await lIn.next(), f);
  t.equal(d.session.leftover.length, 0);
  const sealed = d.session.seal(Buffer.from('x'));
  t.equal(sealed.length, 1 + SEAL_OVERHEAD);
  t.not(sealed.subarray(0, 1).toString(), 'x', 'the body is encrypted');
});

t.test('handshake: wrong key is refused on both sides', async (t) => {
  const l = await listen(t, key);
  const [d, s] = await Promise.all([dial(t, l.port, randomBytes(64)), l.next()]);
  t.equal(d.error?.name, 'SystemError');
  t.equal(d.error?.code, 'EACCES');
  t.equal(d.error?.message, DIAL_REFUSED);
  t.equal(s.error?.code, 'EACCES');
  t.match(s.error?.message, /^handshake from 127\.0\.0\.1:\d+ refused: peer does not hold the cluster key$/);
  t.ok(d.sock.destroyed && s.sock.destroyed, 'both connections are dropped');
});

t.test('handshake: a truncated key is refused on both sides', async (t) => {
  const l = await listen(t, key);
  const [d, s] = await Promise.all([dial(t, l.port, key.subarray(0, 48)), l.next()]);
  t.equal(d.error?.message, DIAL_REFUSED);
  t.equal(s.error?.code, 'EACCES');
  const l2 = await listen(t, key.subarray(0, 32));
  const [d2, s2] = await Promise.all([dial(t, l2.port, key), l2.next()]);
  t.equal(d2.error?.message, DIAL_REFUSED);
  t.equal(s2.error?.code, 'EACCES');
  const sock = await connect(t, l.port);
  await t.rejects(handshake(sock, key.subarray(0, 15), 'dialer'), { code: 'EINVAL' }, 'a key under 16 bytes is not used at all');
});

t.test('handshake: a dialer that fails learns nothing but the listener hello', async (t) => {
  const l = await listen(t, key);
  const sock = await connect(t, l.port);
  const got = collect(sock);
  sock.write(msg(hello('dialer')));
  sock.write(msg(randomBytes(32))); // a proof made up without the key
  const [received, s] = await Promise.all([got, l.next()]);
  t.equal(s.error?.code, 'EACCES');
  t.equal(received.length, HELLO_MESSAGE, 'only the hello: no proof, no frame');
  t.same(received.subarray(4, 10), Buffer.concat([Buffer.from('CRKT'), Buffer.from([PROTOCOL_VERSION, 0x4c])]));
});

t.test('handshake: a listener without the key, or with a made-up proof, is refused by the dialer', async (t) => {
  const wrong = await listen(t, randomBytes(64));
  const [d, s] = await Promise.all([dial(t, wrong.port, key), wrong.next()]);
  t.equal(d.error?.message, DIAL_REFUSED);
  t.equal(s.error?.code, 'EACCES');
  // a fake listener that answers with a made-up proof
  const server = net.createServer((c) => {
    c.on('error', () => undefined);
    c.write(msg(hello('listener')));
    c.once('data', () => c.write(msg(randomBytes(32))));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.teardown(() => server.close());
  const d2 = await dial(t, (server.address() as net.AddressInfo).port, key);
  t.equal(d2.error?.code, 'EACCES');
  t.equal(d2.error?.message, DIAL_REFUSED);
  t.match(String((d2.error?.cause as Error).message), /does not hold the cluster key/);
});

t.test('handshake: a tampered frame fails open and the session stays failed', async (t) => {
  const { d, l } = await goodPair(t);
  const sealed = d.session.seal(Buffer.from('echo hi > /Xabc/proc'));
  const bad = Buffer.from(sealed);
  bad[0] ^= 0x80;
  t.throws(() => l.session.open(bad), { code: 'EPROTO', name: 'SystemError' });
  t.throws(() => l.session.open(sealed), { code: 'EPROTO' }, 'the genuine frame is refused too: the caller must close');
});

t.test('handshake: replayed, reordered, dropped, truncated and reflected frames fail', async (t) => {
  const cases: Array<[string, (s: SecureSession, f: Buffer[]) => void]> = [
    ['replayed', (s, f) => { s.open(f[0]); s.open(f[0]); }],
    ['reordered', (s, f) => { s.open(f[1]); }],
    ['dropped', (s, f) => { s.open(f[0]); s.open(f[2]); }],
    ['truncated', (s, f) => { s.open(f[0].subarray(0, f[0].length - 1)); }],
    ['shorter than a tag', (s, f) => { s.open(f[0].subarray(0, SEAL_OVERHEAD - 1)); }],
    ['extended', (s, f) => { s.open(Buffer.concat([f[0], Buffer.from([0])])); }],
  ];
  for (const [name, act] of cases) {
    const { d, l } = await goodPair(t);
    const sent = [0, 1, 2].map((i) => d.session.seal(Buffer.from(`frame ${i}`)));
    t.throws(() => act(l.session, sent), { code: 'EPROTO' }, name);
  }
  const { d, l } = await goodPair(t);
  const mine = d.session.seal(Buffer.from('to the listener'));
  t.throws(() => d.session.open(mine), { code: 'EPROTO' }, 'reflected back to its sender');
  t.same(l.session.open(mine), Buffer.from('to the listener'), 'while the intended receiver opens it');
  const other = await goodPair(t);
  t.throws(() => other.l.session.open(d.session.seal(Buffer.from('x'))), { code: 'EPROTO' }, 'from another connection');
});

t.test('handshake: every bit flip of a sealed frame is caught', async (t) => {
  const plain = Buffer.from('mkproc {"Path":"/bin/sh"}');
  const sealedLength = plain.length + SEAL_OVERHEAD;
  // a receiver breaks on its first failure, so each variant gets a connection of its own
  let caught = 0;
  const positions = [0, 1, plain.length - 1, plain.length, sealedLength - 1].flatMap((b) => [b * 8, b * 8 + 7]);
  for (const bit of positions) {
    const p = await goodPair(t);
    const first = p.d.session.seal(plain);
    const bad = Buffer.from(first);
    bad[bit >> 3] ^= 1 << (bit & 7);
    try {
      p.l.session.open(bad);
    } catch {
      caught++;
    }
  }
  t.equal(caught, positions.length, 'flips in the body and in the tag');
});

/** A TCP proxy that records what each side sent, for handshake replays. */
async function recordingProxy(t: Tap, target: number) {
  const fromDialer: Buffer[] = [];
  const fromListener: Buffer[] = [];
  const server = net.createServer((a) => {
    const b = net.connect(target, '127.0.0.1');
    a.on('error', () => undefined);
    b.on('error', () => undefined);
    a.on('data', (c: Buffer) => { fromDialer.push(c); b.write(c); });
    b.on('data', (c: Buffer) => { fromListener.push(c); a.write(c); });
    a.on('close', () => b.destroy());
    b.on('close', () => a.destroy());
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.teardown(() => server.close());
  return { port: (server.address() as net.AddressInfo).port, fromDialer, fromListener };
}

t.test('handshake: a recorded handshake replayed to either side is refused', async (t) => {
  const l = await listen(t, key);
  const proxy = await recordingProxy(t, l.port);
  const [d, s] = await Promise.all([dial(t, proxy.port, key), l.next()]);
  t.ok(d.session && s.session, 'the recorded handshake succeeded');
  const dialerBytes = Buffer.concat(proxy.fromDialer);
  const listenerBytes = Buffer.concat(proxy.fromListener);
  t.equal(dialerBytes.length, HELLO_MESSAGE + 4 + 32, 'hello and proof');
  // replay the dialer's side to the listener
  const sock = await connect(t, l.port);
  const got = collect(sock);
  sock.write(dialerBytes);
  const [received, s2] = await Promise.all([got, l.next()]);
  t.equal(s2.error?.code, 'EACCES', 'listener refuses the replayed proof');
  t.equal(received.length, HELLO_MESSAGE, 'and sends no proof back');
  // replay the listener's side to a new dialer
  const fake = net.createServer((c) => {
    c.on('error', () => undefined);
    c.write(listenerBytes);
  });
  await new Promise<void>((r) => fake.listen(0, '127.0.0.1', r));
  t.teardown(() => fake.close());
  const d2 = await dial(t, (fake.address() as net.AddressInfo).port, key);
  t.equal(d2.error?.message, DIAL_REFUSED, 'dialer refuses the replayed listener proof');
});

t.test('handshake: reflection and protocol mismatches are refused', async (t) => {
  const l = await listen(t, key);
  const probes: Array<[string, (listenerHello: Buffer) => Buffer[], RegExp]> = [
    ['a listener hello from a dialer', () => [msg(hello('listener'))], /does not act as the dialer/],
    ['another version', () => [msg(hello('dialer', randomBytes(32), 99))], /protocol version 99/],
    ['not circuit', () => [msg(Buffer.alloc(38, 0x41))], /not speaking the circuit handshake/],
    ['our nonce echoed', (lh) => [msg(hello('dialer', Buffer.from(lh.subarray(-32))))], /echoed our nonce/],
    ['a long message', () => [Buffer.from([0, 0, 1, 1])], /257 bytes is too long/],
    ['a huge length', () => [Buffer.from([0xff, 0xff, 0xff, 0xff])], /too long/],
    ['a wrong-sized hello', () => [msg(randomBytes(37))], /37 bytes, expected 38/],
    ['a truncated hello', () => [msg(hello('dialer')).subarray(0, 20)], /closed during the handshake/],
  ];
  for (const [name, make, why] of probes) {
    const sock = await connect(t, l.port);
    const got = collect(sock);
    const lh = await new Promise<Buffer>((r) => sock.once('data', (c: Buffer) => r(c.subarray(4))));
    for (const b of make(lh)) sock.write(b);
    if (name === 'a truncated hello') sock.end();
    const s = await l.next();
    t.match(s.error?.message, why, name);
    t.notOk(s.session, name);
    await got;
  }
  t.ok(MAX_HANDSHAKE_MESSAGE <= 256);
});

t.test('handshake: a silent peer times out on both sides', async (t) => {
  const l = await listen(t, key, 150);
  const sock = await connect(t, l.port);
  const got = collect(sock);
  const s = await l.next();
  t.equal(s.error?.code, 'ETIMEDOUT');
  t.match(s.error?.message, /did not finish in 150 ms/);
  t.equal((await got).length, HELLO_MESSAGE);
  const silent = net.createServer((c) => c.on('error', () => undefined));
  await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
  t.teardown(() => silent.close());
  const started = Date.now();
  const d = await dial(t, (silent.address() as net.AddressInfo).port, key, 150);
  t.equal(d.error?.code, 'EACCES');
  t.equal(d.error?.message, DIAL_REFUSED);
  t.equal((d.error?.cause as { code?: string }).code, 'ETIMEDOUT');
  t.ok(Date.now() - started < 2000);
  t.ok(d.sock.destroyed);
});

t.test('handshake: random bytes and cut hellos never throw uncaught (bounded fuzz)', async (t) => {
  const l = await listen(t, key, 200);
  const rounds = 300;
  const refusals = new Map<string, number>();
  for (let batch = 0; batch < rounds; batch += 30) {
    const runs: Array<Promise<void>> = [];
    for (let i = batch; i < batch + 30; i++) {
      runs.push((async () => {
        const sock = await connect(t, l.port);
        const got = collect(sock);
        const good = Buffer.concat([msg(hello('dialer')), msg(randomBytes(32))]);
        const kind = i % 4;
        const bytes = kind === 0 ? randomBytes(1 + (i % 90))
          : kind === 1 ? good.subarray(0, i % good.length)
            : kind === 2 ? Buffer.concat([good.subarray(0, 6 + (i % 30)), randomBytes(i % 50)])
              : Buffer.concat([msg(hello('dialer')), randomBytes(i % 40)]);
        sock.write(bytes);
        if (i % 3 !== 0) sock.end();
        if (i % 7 === 0) sock.destroy();
        await got;
      })());
    }
    await Promise.all(runs);
  }
  for (let i = 0; i < rounds; i++) {
    const s = await l.next();
    if (s.session) t.fail('a handshake succeeded without the key');
    refusals.set(s.error!.code, (refusals.get(s.error!.code) ?? 0) + 1);
  }
  t.ok([...refusals.keys()].every((c) => ['EACCES', 'EPROTO', 'ECONNRESET', 'ETIMEDOUT'].includes(c)), JSON.stringify([...refusals]));
});

t.test('handshake: the deadline is 5 s by default and runs on the given clock', async (t) => {
  const clock = new ManualClock();
  const server = net.createServer((c) => c.on('error', () => undefined)); // accepts, says nothing
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.teardown(() => server.close());
  const sock = await connect(t, (server.address() as net.AddressInfo).port);
  let settled: CircuitError | undefined;
  const p = handshake(sock, key, 'dialer', { clock }).catch((e: CircuitError) => (settled = e));
  await new Promise((r) => setTimeout(r, 20));
  clock.advance(4999);
  await new Promise((r) => setImmediate(r));
  t.equal(settled, undefined, 'still waiting just before 5 s');
  clock.advance(1);
  await p;
  t.equal(settled?.message, DIAL_REFUSED);
  t.equal((settled?.cause as { code?: string }).code, 'ETIMEDOUT');
  t.equal(clock.pending(), 0, 'no timer left behind');
});
