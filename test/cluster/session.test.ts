import t from 'tap';
import * as net from 'node:net';
import { Session } from '../../src/cluster/session';
import { ByteParts } from '../../src/kit/chunks';
import { ManualClock } from '../../src/kit/clock';
import { AppError, CircuitError } from '../../src/kit/errors';

/** The error a call fails with (and a failure if it succeeds). */
const fails = (p: Promise<unknown>): Promise<CircuitError> =>
  p.then(() => { throw new Error('expected the call to fail'); }, (e: unknown) => e as CircuitError);

/** A connected pair of sockets on loopback. */
async function pair(): Promise<[net.Socket, net.Socket, () => void]> {
  const srv = net.createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const port = (srv.address() as net.AddressInfo).port;
  const accepted = new Promise<net.Socket>((r) => srv.once('connection', r));
  const a = net.connect(port, '127.0.0.1');
  const b = await accepted;
  await new Promise((r) => a.once('connect', r));
  return [a, b, () => srv.close()];
}

t.test('session: request and answer, errors keep their code and kind', async (t) => {
  const [a, b, done] = await pair();
  const ca = new Session(a), cb = new Session(b);
  cb.handler = async (op, args) => {
    if (op === 'echo') return args;
    throw new AppError('EBUSY', 'anchor already has an element');
  };
  t.same(await ca.call('echo', [1, 'two', Buffer.from('3')]), [1, 'two', Buffer.from('3')]);
  const err = await fails(ca.call('other', []));
  t.ok(err instanceof CircuitError);
  t.equal(err.code, 'EBUSY');
  t.equal(err.system, false);
  t.equal(err.message, 'anchor already has an element');
  ca.destroy(); cb.destroy(); done();
});

t.test('session: an aborted call cancels the handler on the other side', async (t) => {
  const [a, b, done] = await pair();
  const ca = new Session(a), cb = new Session(b);
  let cancelled!: () => void;
  const seen = new Promise<void>((r) => (cancelled = r));
  cb.handler = (_op, _args, ctx) => new Promise((_res, rej) => ctx.abort.signal.addEventListener('abort', () => { cancelled(); rej(new Error('x')); }));
  const ac = new AbortController();
  const p = ca.call('block', []);
  const q = ca.call('block', [], { signal: ac.signal });
  setTimeout(() => ac.abort(), 20);
  const e = await fails(q);
  t.equal(e.code, 'EINTR');
  await seen;
  t.pass('handler saw the cancel');
  ca.destroy();
  t.equal((await fails(p)).code, 'ECONNRESET', 'pending calls fail when the session ends');
  cb.destroy(); done();
});

t.test('session: a handler that looks at its signal only after the cancel finds it aborted, as does the session end', async (t) => {
  const [a, b, done] = await pair();
  const ca = new Session(a), cb = new Session(b);
  const looks: Array<{ before: boolean; signal: boolean }> = [];
  let cancelled!: () => void;
  const seen = new Promise<void>((r) => (cancelled = r));
  cb.handler = async (op, _args, ctx) => {
    const before = ctx.abort.aborted;
    await new Promise<void>((r) => ctx.abort.onAbort(r));
    looks.push({ before, signal: ctx.abort.signal.aborted }); // the signal is made here, after the abort
    if (op === 'cancelled') cancelled();
    throw new Error('x');
  };
  const ac = new AbortController();
  const q = ca.call('cancelled', [], { signal: ac.signal });
  setTimeout(() => ac.abort(), 20);
  t.equal((await fails(q)).code, 'EINTR');
  await seen;
  const p = ca.call('ended', []);
  await new Promise((r) => setTimeout(r, 20));
  cb.destroy();
  await fails(p);
  await new Promise((r) => setImmediate(r));
  t.same(looks, [{ before: false, signal: true }, { before: false, signal: true }], 'not aborted at first; the signal made later has aborted');
  ca.destroy(); done();
});

t.test('session: a large message is chunked and does not hold up a small one', async (t) => {
  const [a, b, done] = await pair();
  const ca = new Session(a, { config: { maxFrame: 64 * 1024, chunkSize: 32 * 1024 } }), cb = new Session(b, { config: { maxFrame: 64 * 1024, chunkSize: 32 * 1024 } });
  cb.handler = async (op, args) => (op === 'size' ? (args as Buffer[])[0].length : 'small');
  const big = Buffer.alloc(8 << 20, 1);
  const order: string[] = [];
  const pb = ca.call('size', [big]).then((n) => { order.push('big'); return n; });
  const ps = ca.call('small', []).then(() => order.push('small'));
  t.equal(await pb, big.length, 'the large message arrives whole');
  await ps;
  t.same(order, ['small', 'big'], 'the small request was answered before the large one finished');
  ca.destroy(); cb.destroy(); done();
});

t.test('session: messages of every size around frame, chunk and TLS record boundaries arrive byte-exact, with and without a key', async (t) => {
  const { handshake } = await import('../../src/cluster/handshake');
  const { randomBytes } = await import('node:crypto');
  const key = randomBytes(32);
  const config = { maxFrame: 64 * 1024, chunkSize: 40 * 1024 };
  // 16 KiB is a TLS record's most, 64 KiB the frame's here (a larger message goes in 40 KiB chunks)
  const sizes = [0, 1, 16 * 1024 - 40, 16 * 1024, 16 * 1024 + 1, 64 * 1024 - 20, 64 * 1024, 64 * 1024 + 1, 200 * 1024 + 3, 3 << 20];
  for (const keyed of [false, true]) {
    const [a, b, done] = await pair();
    const [sa, sb] = keyed ? await Promise.all([handshake(a, key, 'dialer'), handshake(b, key, 'listener')]) : [a, b];
    const ca = new Session(sa, { config }), cb = new Session(sb, { config });
    cb.handler = async (_op, args) => Buffer.concat([(args as Buffer[])[0]!, Buffer.from('!')]);
    const msgs = sizes.map((n) => randomBytes(n));
    // all at once, so frames and chunks of several messages share the connection and its records
    const answers = (await Promise.all(msgs.map((m) => ca.call('echo', [m])))) as Buffer[];
    for (const [i, m] of msgs.entries()) {
      t.ok(answers[i]!.equals(Buffer.concat([m, Buffer.from('!')])), `${keyed ? 'with' : 'without'} a key: ${m.length} bytes there and back, byte-exact`);
    }
    ca.destroy(); cb.destroy(); done();
  }
});

t.test('session: an answer ending with a large byte string (one buffer, or the slices of a stream) is written without copying it, and the same bytes go on the wire', async (t) => {
  const { Packr } = await import('msgpackr');
  const { randomBytes } = await import('node:crypto');
  const packr = new Packr({ useRecords: false, moreTypes: false, int64AsType: 'number' } as never);
  const [a, b, done] = await pair();
  const sa = new Session(a);
  const answers = new Map<number, unknown>();
  sa.handler = async (_op, args) => answers.get((args as number[])[0]!);
  const cases: unknown[] = [
    [7, randomBytes(64 << 10)],
    [2 ** 40, randomBytes(768 << 10)],
    randomBytes(300_000),
    [0, 'x', randomBytes((64 << 10) - 1)],
    [1, randomBytes(1 << 20)], // more than a frame: chunked as before
    [3, null],
    [9, new ByteParts([randomBytes(100_000), randomBytes(1), randomBytes(65_536)], 165_537)], // a stream's chunks, as they are held
    [4, new ByteParts([randomBytes(100), randomBytes(200)], 300)], // small: packed whole, as one string
  ];
  const plain = (v: unknown) => (Array.isArray(v) && v[1] instanceof ByteParts ? [v[0], v[1].toBuffer()] : v);
  let got = Buffer.alloc(0);
  b.on('data', (d: Buffer) => (got = Buffer.concat([got, d])));
  for (const [i, v] of cases.entries()) {
    answers.set(i, v);
    const req = packr.pack([0, i + 1, 'x', [i]]);
    const head = Buffer.alloc(4);
    head.writeUInt32BE(req.length);
    b.write(Buffer.concat([head, req]));
    const body = packr.pack([1, i + 1, true, plain(v)]);
    const frame = Buffer.concat([Buffer.alloc(4), body]);
    frame.writeUInt32BE(body.length);
    const chunked = body.length > 1 << 20;
    await new Promise<void>((r) => {
      const check = () => (got.length >= (chunked ? body.length : frame.length) ? r() : setTimeout(check, 5));
      check();
    });
    if (chunked) t.ok(got.length > body.length, 'a message larger than a frame still goes in chunks');
    else t.ok(got.equals(frame), `case ${i}: the frame is what msgpackr packs whole`);
    got = Buffer.alloc(0);
  }
  sa.destroy(); b.destroy(); done();
  // and through TLS, between two sessions, several at once
  const { handshake } = await import('../../src/cluster/handshake');
  const key = randomBytes(32);
  const [c, d, done2] = await pair();
  const [sc, sd] = await Promise.all([handshake(c, key, 'dialer'), handshake(d, key, 'listener')]);
  const cc = new Session(sc), cd = new Session(sd);
  const bytes = [randomBytes(64 << 10), randomBytes(500_000), randomBytes(768 << 10), randomBytes(1_200_000)];
  // the last as a stream's chunks, more than a frame: chunked, as one string
  cd.handler = async (_op, args) => {
    const i = (args as number[])[0]!;
    return [i, i === 3 ? new ByteParts([bytes[3]!.subarray(0, 600_000), bytes[3]!.subarray(600_000)], 1_200_000) : bytes[i]];
  };
  const back = (await Promise.all(bytes.map((_, i) => cc.call('x', [i])))) as Array<[number, Buffer]>;
  for (const [i, [n, x]] of back.entries()) t.ok(n === i && x.equals(bytes[i]!), `with a key: [${i}, ${bytes[i]!.length} bytes] byte-exact`);
  cc.destroy(); cd.destroy(); done2();
});

t.test('session: a silent peer is declared dead within deadMs and pending calls fail', async (t) => {
  const [a, b, done] = await pair();
  const clock = new ManualClock(0);
  const ca = new Session(a, { clock, config: { pingMs: 1000, deadMs: 3000 } });
  b.on('data', () => {}); // a peer that reads but never answers
  const p = ca.call('anything', []);
  clock.advance(1000);
  clock.advance(1000);
  clock.advance(1000);
  t.notOk(ca.isClosed, 'still alive at 3 s');
  clock.advance(1001);
  const e = await fails(p);
  t.equal(e.code, 'EHOSTDOWN');
  t.equal(e.system, true);
  b.destroy(); done();
});

t.test('session: a peer that answers pings stays alive', async (t) => {
  const [a, b, done] = await pair();
  const clock = new ManualClock(0);
  const ca = new Session(a, { clock, config: { pingMs: 1000, deadMs: 3000 } });
  const cb = new Session(b);
  for (let i = 0; i < 10; i++) {
    clock.advance(1000);
    await new Promise((r) => setTimeout(r, 20)); // let the pong arrive
  }
  t.notOk(ca.isClosed);
  ca.destroy(); cb.destroy(); done();
});

t.test('session: an oversized frame closes the connection', async (t) => {
  const [a, b, done] = await pair();
  const ca = new Session(a, { config: { maxFrame: 1024 } });
  const head = Buffer.alloc(4);
  head.writeUInt32BE(100 << 20);
  b.write(head);
  const why = await ca.closed;
  t.equal(why.code, 'EMSGSIZE');
  b.destroy(); done();
});

t.test('session: garbage after a valid header closes the connection, never throws', async (t) => {
  const [a, b, done] = await pair();
  const ca = new Session(a);
  const body = Buffer.from([0xc1, 0xc1, 0xc1]); // never-used msgpack bytes
  const head = Buffer.alloc(4);
  head.writeUInt32BE(body.length);
  b.write(Buffer.concat([head, body]));
  const why = await ca.closed;
  t.equal(why.code, 'EPROTO');
  b.destroy(); done();
});

t.test('session: a peer is cut off when its unfinished chunked messages pass the limits', async (t) => {
  const { Packr } = await import('msgpackr');
  const { encodeFrame } = await import('../../src/cluster/frame');
  const packr = new Packr({ useRecords: false } as never);
  const chunk = (sid: number, n: number) => encodeFrame(packr.pack([5, sid, false, Buffer.alloc(n, 1)]));
  {
    const [a, b, done] = await pair();
    const ca = new Session(a, { config: { maxAssembly: 100_000, maxMessage: 1 << 20 } });
    b.on('data', () => {});
    for (let sid = 1; sid <= 3; sid++) b.write(chunk(sid, 40_000)); // 120 000 bytes in three streams
    const why = await ca.closed;
    t.equal(why.code, 'EMSGSIZE');
    t.match(why.message, /more than 100000 bytes of unfinished messages/);
    b.destroy(); done();
  }
  {
    const [a, b, done] = await pair();
    const ca = new Session(a, { config: { maxMessage: 50_000 } });
    b.on('data', () => {});
    b.write(chunk(1, 30_000));
    b.write(chunk(1, 30_000)); // one message of 60 000 bytes
    const why = await ca.closed;
    t.equal(why.code, 'EMSGSIZE');
    t.match(why.message, /message of more than 50000 bytes/);
    b.destroy(); done();
  }
});
