/**
 * The output pump pushing a lent pipe to a socket itself (native/fdtake/pump.c, "Pushing";
 * src/node/pump.ts PumpSource.push), against a real child and a real loopback TCP connection.
 * The test is the reader at the other end: it reads the socket and writes the 8-byte
 * acknowledgements. Every check puts the stream back together from what JavaScript got before the
 * lend, what the reader got, what the pump handed back (PUSH_DONE's keep) and what it read after
 * the pipe was JavaScript's again, and compares it with the child's output: nothing lost, nothing
 * twice, in order.
 */
import t from 'tap';
import net = require('node:net');
import { execFileSync, spawn } from 'node:child_process';
import { havePump, outputPipe, pumpOutput, type PumpSource, type PushEvents } from '../../src/node/pump';
import { takeSocketFd, ACK_BYTES } from '../../src/node/push';
import { closeQuietly } from '../../src/kit/fds';
import { deferred } from '../../src/kit/deferred';

const src0 = havePump() ? pumpOutput : undefined;
const skip = !src0 && 'the add-on native/fdtake was not built (sh scripts/build-native.sh)';

const LINES = 2_000_000; // 14.9 MB
const expected = execFileSync('seq', ['1', String(LINES)], { maxBuffer: 64 << 20 });
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** `seq` on a pump pipe: what JavaScript got, the source, the end. */
function seq(): { out: Buffer[]; size(): number; src: PumpSource; ended: Promise<number> } {
  const [r, w] = outputPipe()!;
  const child = spawn('seq', ['1', String(LINES)], { stdio: ['ignore', w, 'inherit'] });
  closeQuietly(w);
  child.on('error', () => {});
  const out: Buffer[] = [];
  let size = 0;
  const end = deferred<number>();
  const src = pumpOutput(r, { data: (c) => { out.push(Buffer.from(c)); size += c.length; }, end: (e) => end.resolve(e) });
  return { out, size: () => size, src, ended: end.promise };
}

/** Lends the pipe once a first MiB came (asks again while a piece of it is on its way). */
async function lendAfter(s: ReturnType<typeof seq>, bytes: number): Promise<void> {
  while (s.size() < bytes) await sleep(1);
  for (;;) {
    const l = s.src.lend();
    if (typeof l === 'number') return;
    if (l === undefined) throw new Error('the pipe cannot be lent');
    await sleep(1);
  }
}

/** A connected pair over loopback: the pushing end's descriptor, and the reader's socket. */
async function connection(): Promise<{ fd: number; reader: net.Socket; close(): void }> {
  const server = net.createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const accepted = new Promise<net.Socket>((r) => server.once('connection', r));
  const c = net.connect((server.address() as net.AddressInfo).port, '127.0.0.1');
  await new Promise((r) => c.once('connect', r));
  const reader = await accepted;
  server.close();
  return { fd: takeSocketFd(c), reader, close: () => reader.destroy() };
}

function ackOf(at: number): Buffer {
  const b = Buffer.alloc(ACK_BYTES);
  b.writeBigUInt64LE(BigInt(at));
  return b;
}

interface Pushed {
  got: Buffer[];
  size(): number;
  events: PushEvents;
  ended: Promise<number>;
  done: Promise<{ acked: number; tail: number; keep: Buffer } | undefined>;
  acks: number[];
}

/** Events recorded; the reader reads everything and acknowledges every `every` bytes (0: never). */
function reader(sock: net.Socket, at: number, every: number): Pushed {
  const got: Buffer[] = [];
  let size = 0, last = at;
  const ended = deferred<number>(), done = deferred<{ acked: number; tail: number; keep: Buffer } | undefined>();
  const acks: number[] = [];
  sock.on('data', (b: Buffer) => {
    got.push(b);
    size += b.length;
    if (every && at + size - last >= every) {
      last = at + size;
      sock.write(ackOf(last));
    }
  });
  sock.on('end', () => {
    if (every) sock.write(ackOf(at + size)); // everything passed on
  });
  sock.on('error', () => {});
  return { got, size: () => size, acks, ended: ended.promise, done: done.promise, events: { acked: (v) => acks.push(v), ended: (v) => ended.resolve(v), done: (r) => done.resolve(r) } };
}

/**
 * `seq`, its pipe lent once a first MiB came, pushed to a fresh connection whose reader
 * acknowledges every `every` bytes; the last `prefix` bytes JavaScript got go first.
 */
async function started(every: number, prefix = 0) {
  const s = seq();
  await lendAfter(s, 1 << 20);
  const before = Buffer.concat(s.out);
  const at = before.length - prefix;
  const { fd, reader: sock, close } = await connection();
  const r = reader(sock, at, every);
  const on = s.src.push!(fd, at, prefix ? before.subarray(at) : undefined, r.events);
  return { s, before, at, sock, close, r, on };
}

/** The pipe is JavaScript's again: what it hands over from now to its end (and the end's errno). */
async function restAfterUnlend(s: ReturnType<typeof seq>): Promise<[Buffer, number]> {
  const sofar = s.size();
  s.src.unlend();
  const errno = await s.ended;
  return [Buffer.concat(s.out).subarray(sofar), errno];
}

t.test('pump push: a prefix, then the pipe, every byte to the reader once; the end, everything acknowledged, then the pipe is JavaScript\'s again', { skip }, async (t) => {
  // the last 100 000 bytes JavaScript has are not sent yet: they go first, as the prefix
  const { s, before, at, close, r, on } = await started(256 << 10, 100_000);
  t.teardown(close);
  t.ok(on, 'the push is on');
  const end = await r.ended;
  t.equal(end, expected.length, 'the end offset is the stream\'s length');
  const done = await r.done;
  t.same(done && { acked: done.acked, tail: done.tail, keep: done.keep.length }, { acked: end, tail: end, keep: 0 }, 'over once everything was acknowledged: nothing handed back');
  t.ok(Buffer.concat([before.subarray(0, at), ...r.got]).equals(expected), 'the reader got the prefix and the rest of the stream, in order');
  t.ok(r.acks.length > 0 && r.acks.every((v, i) => v <= before.length && (i === 0 || v > r.acks[i - 1]!)), `acknowledgements told up to where the pipe was lent (${r.acks.join(', ')})`);
  const [, errno] = await restAfterUnlend(s);
  t.equal(errno, 0, 'the pipe, JavaScript\'s again, ends');
  t.equal(s.size(), before.length, 'and gave JavaScript nothing more');
});

t.test('pump push: stopped mid-stream, the bytes not acknowledged come back and the pipe goes on after them', { skip }, async (t) => {
  const { s, before, sock, close, r, on } = await started(0); // acknowledges nothing by itself
  t.teardown(close);
  t.ok(on);
  while (r.size() < 3 << 20) await sleep(2);
  const acked = before.length + 1_000_000;
  sock.write(ackOf(acked));
  await sleep(50);
  s.src.pushStop!();
  const done = (await r.done)!;
  t.equal(done.acked, acked, 'the last acknowledgement');
  t.ok(done.tail >= before.length + r.size(), `read from the pipe up to ${done.tail}, at least what the reader got`);
  t.ok(done.keep.equals(expected.subarray(acked, done.tail)), `handed back: ${done.keep.length} bytes, exactly those after the acknowledgement`);
  t.ok(Buffer.concat(r.got).equals(expected.subarray(before.length, before.length + r.size())), 'what the reader got was the stream, in order');
  const [after, errno] = await restAfterUnlend(s);
  t.equal(errno, 0);
  t.ok(Buffer.concat([before, expected.subarray(before.length, acked), done.keep, after]).equals(expected), 'acknowledged + handed back + read after: the stream exactly');
});

t.test('pump push: the reader closes the connection, or acknowledges what it never got: over, nothing lost', { skip }, async (t) => {
  for (const how of ['close', 'bad ack'] as const) {
    const { s, before, sock, close, r, on } = await started(256 << 10);
    t.ok(on);
    while (r.size() < 2 << 20) await sleep(2);
    sock.pause();
    await sleep(50);
    if (how === 'close') close();
    else sock.write(ackOf(Number.MAX_SAFE_INTEGER));
    const done = (await r.done)!;
    t.ok(done.acked >= before.length && done.acked <= before.length + r.size(), `${how}: acknowledged ${done.acked}, within what the reader got`);
    t.ok(done.keep.equals(expected.subarray(Math.max(done.acked, before.length), done.tail)), `${how}: the bytes not acknowledged came back`);
    const [after] = await restAfterUnlend(s);
    const all = Buffer.concat([before, expected.subarray(before.length, Math.max(done.acked, before.length)), done.keep, after]);
    t.ok(all.equals(expected), `${how}: the stream exactly, once`);
    close();
  }
});

t.test('pump push: a reader that does not acknowledge holds the producer (the ring is bounded); stop on a stopped source answers at once', { skip }, async (t) => {
  const { s, before, close, r, on } = await started(0);
  t.teardown(close);
  t.ok(on);
  await sleep(300);
  const got = r.size();
  await sleep(200);
  t.equal(r.size(), got, `the push stands still after ${got} bytes, nothing acknowledged`);
  t.ok(got < expected.length - before.length, 'before the end of the stream');
  t.ok(got >= 4 << 20, 'after the ring\'s 4 MiB at least');
  s.src.stop();
  t.equal(await r.done, undefined, 'a stopped source: the push is over, nothing to hand back to');
});
