import t from 'tap';
import * as net from 'node:net';
import { randomBytes } from 'node:crypto';
import type * as tls from 'node:tls';
import { Packr } from 'msgpackr';
import {
  handshake, preamble, DIAL_REFUSED, PREAMBLE_BYTES, WIRE_VERSION, WireVersionError, type Role,
} from '../../src/cluster/handshake';
import { CircuitError } from '../../src/kit/errors';
import { ManualClock } from '../../src/kit/clock';

const key = randomBytes(64);

// ---- helpers: a listener whose handshakes queue up, raw peers, and length-prefixed frames ----

interface Listener {
  port: number;
  /** The next accepted connection's handshake result. */
  next(): Promise<{ session?: net.Socket; error?: CircuitError; sock: net.Socket }>;
}

async function listen(t: Tap, lkey: Buffer | null, timeoutMs = 2000): Promise<Listener> {
  const results: Array<Promise<{ session?: net.Socket; error?: CircuitError; sock: net.Socket }>> = [];
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

async function dial(t: Tap, port: number, dkey: Buffer | null, timeoutMs = 2000, onTls?: (s: tls.TLSSocket) => void) {
  const sock = await connect(t, port);
  sock.removeAllListeners('error');
  try {
    return { session: await handshake(sock, dkey, 'dialer', { timeoutMs, onTls }), sock };
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

/** A version-1 keyed hello (the hand-written handshake this one replaced). */
function helloV1(role: Role, nonce = randomBytes(32)): Buffer {
  return Buffer.concat([Buffer.from('CRKT'), Buffer.from([1, role === 'dialer' ? 0x44 : 0x4c]), nonce]);
}

/** The next chunk of data a socket receives. */
function nextData(sock: net.Socket): Promise<Buffer> {
  return new Promise((r) => sock.once('data', (c: Buffer) => r(c)));
}

async function goodPair(t: Tap) {
  const l = await listen(t, key);
  const [d, s] = await Promise.all([dial(t, l.port, key), l.next()]);
  if (!d.session || !s.session) throw new Error(`handshake failed: ${d.error?.message} / ${s.error?.message}`);
  return { d: { session: d.session, sock: d.sock }, l: { session: s.session, sock: s.sock } };
}


/** Reads everything a session socket receives as a string, until `want` has arrived. */
function readUntil(sock: net.Socket, want: string): Promise<string> {
  let got = '';
  return new Promise((resolve) => {
    const on = (c: Buffer) => {
      got += c.toString('latin1');
      if (got.includes(want)) {
        sock.off('data', on);
        resolve(got);
      }
    };
    sock.on('data', on);
  });
}

/** The TLS extensions of the ServerHello in a listener's byte stream (after its preamble). */
function serverHelloExtensions(fromListener: Buffer): number[] {
  let b = fromListener.subarray(PREAMBLE_BYTES);
  if (b[0] !== 0x16) throw new Error(`not a TLS handshake record: ${b[0]}`);
  b = b.subarray(5, 5 + b.readUInt16BE(3)); // the record's fragment
  if (b[0] !== 2) throw new Error('not a ServerHello');
  let i = 4 + 2 + 32; // handshake header, legacy_version, random
  i += 1 + b[i]!; // session id
  i += 2 + 1; // cipher suite, compression
  const end = i + 2 + b.readUInt16BE(i);
  i += 2;
  const types: number[] = [];
  while (i < end) {
    types.push(b.readUInt16BE(i));
    i += 4 + b.readUInt16BE(i + 2);
  }
  return types;
}

/** A TCP proxy that records what each side sent. */
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

// ---- behaviours ----

t.test('handshake: matching keys give TLS 1.3 with a PSK and an X25519 exchange; data flows both ways', async (t) => {
  const l = await listen(t, key);
  const proxy = await recordingProxy(t, l.port);
  let tlsSock: tls.TLSSocket | undefined;
  const [d, s] = await Promise.all([dial(t, proxy.port, key, 2000, (x) => (tlsSock = x)), l.next()]);
  if (!d.session || !s.session) throw new Error(`handshake failed: ${d.error?.message} / ${s.error?.message}`);
  t.equal(tlsSock?.getProtocol(), 'TLSv1.3');
  t.match(tlsSock?.getCipher().standardName, /^TLS_(AES_128_GCM|CHACHA20_POLY1305)_SHA256$/);
  t.same(tlsSock?.getEphemeralKeyInfo(), { type: 'ECDH', name: 'X25519', size: 253 }, 'an ephemeral X25519 exchange ran');
  // the listener writes at once, before the dialer has attached its reader: nothing may be lost
  const big = randomBytes(200_000).toString('hex');
  s.session.write('hello dialer ' + big + ' END');
  const dIn = readUntil(d.session, ' END');
  const lIn = readUntil(s.session, 'listener secret END');
  d.session.write('hello listener secret END');
  t.equal(await dIn, 'hello dialer ' + big + ' END');
  t.match(await lIn, /^hello listener secret END$/);
  const wire = Buffer.concat([...proxy.fromDialer, ...proxy.fromListener]).toString('latin1');
  t.notMatch(wire, /hello|secret/, 'no plaintext on the wire');
  t.notOk(wire.includes(big.slice(0, 32)), 'the bulk data is encrypted too');
  // psk_dhe_ke, seen on the wire: the ServerHello accepts the PSK and carries its key share
  const ext = serverHelloExtensions(Buffer.concat(proxy.fromListener));
  t.ok(ext.includes(0x0029), 'pre_shared_key accepted');
  t.ok(ext.includes(0x0033), 'key_share present: (EC)DHE with the PSK, hence forward secrecy');
});

t.test('handshake: without a key, the preamble and then plaintext', async (t) => {
  const l = await listen(t, null);
  const [d, s] = await Promise.all([dial(t, l.port, null), l.next()]);
  if (!d.session || !s.session) throw new Error(`handshake failed: ${d.error?.message} / ${s.error?.message}`);
  t.equal(d.session, d.sock, 'the raw socket itself');
  const got = readUntil(s.session, 'plain END');
  d.session.write('plain END');
  t.equal(await got, 'plain END');
});

t.test('handshake: wrong key is refused on both sides', async (t) => {
  const l = await listen(t, key);
  const [d, s] = await Promise.all([dial(t, l.port, randomBytes(64)), l.next()]);
  t.equal(d.error?.name, 'SystemError');
  t.equal(d.error?.code, 'EACCES');
  t.equal(d.error?.message, DIAL_REFUSED);
  t.equal(s.error?.code, 'EACCES');
  t.match(s.error?.message, /^handshake from 127\.0\.0\.1:\d+ refused: peer does not hold the cluster key/);
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

t.test('handshake: a key against no key is refused on both sides, either way round', async (t) => {
  const keyless = await listen(t, null);
  const [d, s] = await Promise.all([dial(t, keyless.port, key), keyless.next()]);
  t.equal(d.error?.message, DIAL_REFUSED);
  t.match((d.error?.cause as Error).message, /server has no cluster key/);
  t.match(s.error?.message, /refused: peer uses a cluster key; this server has none/);
  const keyed = await listen(t, key);
  const [d2, s2] = await Promise.all([dial(t, keyed.port, null), keyed.next()]);
  t.equal(d2.error?.message, DIAL_REFUSED);
  t.match((d2.error?.cause as Error).message, /server requires a cluster key/);
  t.match(s2.error?.message, /refused: peer has no cluster key/);
});

t.test('handshake: a prober without the key learns the preamble and a TLS alert, nothing more', async (t) => {
  const l = await listen(t, key);
  const proxy = await recordingProxy(t, l.port);
  const [d, s] = await Promise.all([dial(t, proxy.port, randomBytes(64)), l.next()]);
  t.equal(d.error?.code, 'EACCES');
  t.equal(s.error?.code, 'EACCES');
  const got = Buffer.concat(proxy.fromListener);
  t.same(got.subarray(0, PREAMBLE_BYTES), preamble('listener', 1), 'the preamble');
  const rest = got.subarray(PREAMBLE_BYTES);
  t.ok(rest.length === 0 || (rest[0] === 0x15 && rest.length <= 7), `then at most an alert record (${rest.toString('hex')})`);
});

t.test('wire version: a version-1 keyed dialer is refused and told our version', async (t) => {
  const l = await listen(t, key);
  const sock = await connect(t, l.port);
  const got = collect(sock);
  sock.write(msg(helloV1('dialer')));
  const [received, s] = await Promise.all([got, l.next()]);
  t.equal(s.error?.code, 'EPROTO');
  t.match(s.error?.message, /refused: peer speaks circuit wire version 1, not 2/);
  // what a version-1 peer reads as its peer's hello: same framing, version byte 2
  t.equal(received.length, PREAMBLE_BYTES);
  t.equal(received.readUInt32BE(0), 38);
  t.same(received.subarray(4, 9), Buffer.concat([Buffer.from('CRKT'), Buffer.from([WIRE_VERSION])]));
});

t.test('wire version: a version-1 listener is named as such to a new dialer', async (t) => {
  for (const k of [key, null]) {
    const old = net.createServer((c) => {
      c.on('error', () => undefined);
      c.write(msg(helloV1('listener'))); // version 1 sent its hello at once
    });
    await new Promise<void>((r) => old.listen(0, '127.0.0.1', r));
    t.teardown(() => old.close());
    const d = await dial(t, (old.address() as net.AddressInfo).port, k);
    t.ok(d.error instanceof WireVersionError, String(d.error));
    t.equal(d.error?.message, 'server speaks circuit wire version 1; this circuit speaks version 2: run the same version on both');
  }
});

t.test('wire version: a version-1 keyless client gets an error answer to its first request', async (t) => {
  const l = await listen(t, null);
  const packr = new Packr({ useRecords: false, moreTypes: false, int64AsType: 'number' } as never);
  const sock = await connect(t, l.port);
  const got = collect(sock);
  sock.write(msg(packr.pack([0, 7, 'hello', [{ via: 'cli' }]]))); // [REQ, id, op, args], as version 1 sent it
  const [received, s] = await Promise.all([got, l.next()]);
  t.match(s.error?.message, /peer speaks circuit wire version 1/);
  const body = received.subarray(4, 4 + received.readUInt32BE(0));
  const [type, id, ok, err] = packr.unpack(body) as [number, number, boolean, { code: string; message: string }];
  t.same([type, id, ok], [1, 7, false], 'a failed answer to request 7');
  t.equal(err.code, 'EPROTO');
  t.equal(err.message, 'server speaks circuit wire version 2; this client is older (version 1): run the same version on both');
});

t.test('handshake: a recorded session replayed to the listener is refused and delivers nothing', async (t) => {
  const l = await listen(t, key);
  const proxy = await recordingProxy(t, l.port);
  const [d, s] = await Promise.all([dial(t, proxy.port, key), l.next()]);
  if (!d.session || !s.session) throw new Error('the recorded handshake failed');
  const seen = readUntil(s.session, 'rm -rf END');
  d.session.write('rm -rf END');
  await seen;
  await new Promise((r) => setTimeout(r, 50));
  const dialerBytes = Buffer.concat(proxy.fromDialer);
  // the whole dialer side (preamble, ClientHello with its PSK binder, Finished, the command)
  const sock = await connect(t, l.port);
  const got = collect(sock);
  sock.write(dialerBytes);
  const s2 = await l.next();
  t.notOk(s2.session, 'no session');
  t.match(s2.error?.message, /refused/);
  t.match(s2.error?.code, /^(EACCES|EPROTO)$/);
  const back = await got;
  t.notOk(back.toString('latin1').includes('rm -rf'), 'nothing echoed or executed');
  // and the listener's recorded side does not pass for a listener to a new dialer
  const fake = net.createServer((c) => {
    c.on('error', () => undefined);
    c.once('data', () => c.write(Buffer.concat(proxy.fromListener)));
  });
  await new Promise<void>((r) => fake.listen(0, '127.0.0.1', r));
  t.teardown(() => fake.close());
  const d2 = await dial(t, (fake.address() as net.AddressInfo).port, key);
  t.equal(d2.error?.message, DIAL_REFUSED, 'a dialer refuses a replayed listener');
});

t.test('handshake: reflection and malformed preambles are refused', async (t) => {
  const l = await listen(t, key);
  const probes: Array<[string, Buffer, RegExp]> = [
    ['a listener preamble from a dialer', preamble('listener', 1), /does not act as the dialer/],
    ['another version', preamble('dialer', 1, 99), /wire version 99, not 2/],
    ['not circuit', msg(Buffer.alloc(38, 0x41)), /not speaking the circuit handshake/],
    ['a huge length', Buffer.from([0xff, 0xff, 0xff, 0xff, 1, 2, 3, 4]), /not speaking the circuit handshake/],
    ['a TLS ClientHello with no preamble', Buffer.from('160301020001', 'hex'), /closed during the handshake|not speaking/],
    ['a truncated preamble', preamble('dialer', 1).subarray(0, 20), /closed during the handshake/],
  ];
  for (const [name, bytes, why] of probes) {
    const sock = await connect(t, l.port);
    const got = collect(sock);
    sock.write(bytes);
    if (name.startsWith('a truncated') || name.startsWith('a TLS')) sock.end();
    const s = await l.next();
    t.match(s.error?.message, why, name);
    t.notOk(s.session, name);
    const received = await got;
    if (!name.startsWith('another')) t.equal(received.length, 0, `${name}: the listener says nothing`);
  }
});

t.test('handshake: a silent peer times out on both sides', async (t) => {
  const l = await listen(t, key, 150);
  const sock = await connect(t, l.port);
  const got = collect(sock);
  const s = await l.next();
  t.equal(s.error?.code, 'ETIMEDOUT');
  t.match(s.error?.message, /did not finish in 150 ms/);
  t.equal((await got).length, 0, 'a silent dialer gets nothing');
  // silent after the preamble: the TLS part is under the same deadline
  const sock2 = await connect(t, l.port);
  const got2 = collect(sock2);
  sock2.write(preamble('dialer', 1));
  const s2 = await l.next();
  t.equal(s2.error?.code, 'ETIMEDOUT');
  t.equal((await got2).length, PREAMBLE_BYTES);
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

t.test('handshake: random bytes and cut preambles never throw uncaught (bounded fuzz)', async (t) => {
  const l = await listen(t, key, 200);
  const rounds = 300;
  const refusals = new Map<string, number>();
  for (let batch = 0; batch < rounds; batch += 30) {
    const runs: Array<Promise<void>> = [];
    for (let i = batch; i < batch + 30; i++) {
      runs.push((async () => {
        const sock = await connect(t, l.port);
        const got = collect(sock);
        const good = preamble('dialer', 1);
        const kind = i % 4;
        const bytes = kind === 0 ? randomBytes(1 + (i % 90))
          : kind === 1 ? good.subarray(0, i % good.length)
            : kind === 2 ? Buffer.concat([good.subarray(0, 6 + (i % 30)), randomBytes(i % 50)])
              : Buffer.concat([good, Buffer.from([0x16, 3, 1]), randomBytes(i % 400)]);
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
