import t from 'tap';
import { ReadAhead, withReadAhead } from '../../src/node/read-ahead';
import { OutputBuffer } from '../../src/node/output-buffer';
import type { OutputReader } from '../../src/api/types';
import { AppError } from '../../src/kit/errors';

/**
 * The read-ahead of a lease on another server (src/node/read-ahead.ts) against a real
 * OutputBuffer lease, reached as across a connection: every call answers in a later turn, and
 * notes (ack) go in order with the requests. End to end it runs in test/mesh (the mount's cat of
 * another server's stdout, exactly once with interrupted readers).
 */
function remote(buf: OutputBuffer, opts: { old?: boolean } = {}): { reader: OutputReader; asked: () => number; pending: () => number } {
  const lease = buf.acquire();
  let asked = 0;
  let pending = 0;
  const later = <T>(f: () => Promise<T> | T) => new Promise<T>((res, rej) => setImmediate(() => Promise.resolve().then(f).then(res, rej)));
  return {
    asked: () => asked,
    pending: () => pending,
    reader: {
      read: (max, o, at) => later(() => lease.read(max, o, at)),
      readAhead: (max, o, ack) => {
        asked++;
        if (opts.old) return later(() => Promise.reject(new AppError('ENOTSUP', 'unknown operation readAhead')));
        const r = lease.readAhead(max, o, ack); // the home takes it (and its ack) on arrival
        pending++;
        void r.catch(() => {}).finally(() => pending--);
        return later(() => r);
      },
      ack: (at) => lease.ack(at),
      release: (at) => later(() => lease.release(at)),
      abandon: () => lease.abandon(),
    },
  };
}

const bytes = (n: number, from = 0) => Buffer.from(Array.from({ length: n }, (_, i) => (from + i) % 251));

t.test('read-ahead: bytes in order; the home acknowledges only what the reader took; release leaves the rest', async (t) => {
  const buf = new OutputBuffer('stdout', 1 << 22);
  buf.push(bytes(300_000));
  const { reader } = remote(buf);
  const ra = new ReadAhead(reader as never, 64 << 10, 16 << 10);
  const a = await ra.read(10_000, undefined, 0);
  t.same(a, bytes(10_000), 'the first bytes');
  await new Promise((r) => setTimeout(r, 20)); // reads ahead land
  const into = Buffer.alloc(40_000);
  const n = ra.readNow(into, 40_000, 10_000);
  t.ok(n && n > 10_000, `what was read ahead is answered at once (${n} bytes)`);
  t.same(into.subarray(0, n!), bytes(n!, 10_000));
  t.equal(buf.base, 10_000, 'the home dropped what the reader took before its last read, nothing more');
  t.ok(buf.buffered <= 300_000 - 10_000);
  await ra.release(10_000 + n!);
  const l2 = buf.acquire();
  const rest = await l2.read(1 << 20);
  t.same(rest, bytes(300_000 - 10_000 - n!, 10_000 + n!), 'the next reader gets exactly the rest, read ahead or not');
});

t.test('read-ahead: an interrupted read takes nothing; an earlier offset is served again', async (t) => {
  const buf = new OutputBuffer('stdout');
  const { reader } = remote(buf);
  const ra = new ReadAhead(reader as never, 64 << 10, 16 << 10);
  const ac = new AbortController();
  const r = ra.read(100, { signal: ac.signal }, 0);
  ac.abort();
  await t.rejects(r, { code: 'EINTR' });
  buf.push(Buffer.from('abcdef'));
  t.equal((await ra.read(3, undefined, 0))!.toString(), 'abc');
  t.equal((await ra.read(100, undefined, 0))!.toString(), 'abcdef', 'the answer was lost: asked again from 0');
  t.equal((await ra.read(100, undefined, 6 - 3))!.toString(), 'def');
  await t.rejects(ra.read(1, undefined, 1), { code: 'EINVAL' }, 'before the last acknowledged offset: refused');
  buf.end();
  t.equal(await ra.read(100, undefined, 6), null, 'then the end');
});

t.test('read-ahead: abandon leaves everything not acknowledged', async (t) => {
  const buf = new OutputBuffer('stdout');
  buf.push(Buffer.from('0123456789'));
  const { reader } = remote(buf);
  const ra = new ReadAhead(reader as never);
  t.equal((await ra.read(4, undefined, 0))!.toString(), '0123');
  t.equal((await ra.read(4, undefined, 4))!.toString(), '4567');
  ra.abandon();
  await new Promise((r) => setTimeout(r, 10));
  t.equal((await buf.acquire().read(100))!.toString(), '456789', 'from the last offset it acknowledged');
});

t.test('read-ahead: memory stays within its limit', async (t) => {
  const buf = new OutputBuffer('stdout', 64 << 20);
  for (let i = 0; i < 40; i++) buf.push(Buffer.alloc(256 << 10, i));
  const { reader, asked } = remote(buf);
  const ra = new ReadAhead(reader as never, 1 << 20, 256 << 10);
  await ra.read(1, undefined, 0);
  await new Promise((r) => setTimeout(r, 50));
  t.equal(asked(), 4, '1 MiB in pieces of 256 KiB asked for, no more while the reader takes nothing');
  const into = Buffer.alloc(1 << 20);
  t.equal(ra.readNow(into, 2 << 20, 0), 1 << 20, 'exactly the limit is here');
  await ra.release(0);
});

t.test('read-ahead: release cancels the reads in flight (a silent stream would keep them waiting at the home)', async (t) => {
  const buf = new OutputBuffer('stdout');
  buf.push(Buffer.from('x'));
  const { reader, pending } = remote(buf);
  const ra = new ReadAhead(reader as never);
  t.equal((await ra.read(10, undefined, 0))!.toString(), 'x');
  await new Promise((r) => setTimeout(r, 10));
  t.ok(pending() > 0, 'reads wait at the home for bytes that do not come');
  await ra.release(1);
  await new Promise((r) => setTimeout(r, 10));
  t.equal(pending(), 0, 'none left after release');
  buf.push(Buffer.from('yz'));
  t.equal((await buf.acquire().read(10))!.toString(), 'yz', 'the next reader gets what came after');
});

t.test('read-ahead: a home without readAhead is read one read at a time', async (t) => {
  const buf = new OutputBuffer('stdout');
  buf.push(Buffer.from('hello'));
  const { reader } = remote(buf, { old: true });
  const ra = new ReadAhead(reader as never);
  t.equal((await ra.read(3, undefined, 0))!.toString(), 'hel');
  t.equal(ra.readNow(Buffer.alloc(4), 4, 3), undefined, 'nothing is ever here at once');
  t.equal((await ra.read(10, undefined, 3))!.toString(), 'lo');
  await ra.release(5);
  t.equal(buf.buffered, 0);
});

t.test('read-ahead: only a reader that cannot answer at once gets it', async (t) => {
  const buf = new OutputBuffer('stdout');
  const local = buf.acquire();
  t.equal(withReadAhead(local), local, 'a local lease answers at once');
  await local.release();
  t.type(withReadAhead(remote(buf).reader), ReadAhead, 'a lease across a connection reads ahead');
});

t.test('read-ahead: with ackAtOnce (circuit stdout) an acknowledgement goes alone, at once, not with the next read ahead', async (t) => {
  const buf = new OutputBuffer('stdout', 1 << 22);
  buf.push(bytes(200_000));
  const run = async (ackAtOnce: boolean) => {
    const { reader } = remote(buf);
    const notes: number[] = [];
    const ack = reader.ack.bind(reader);
    reader.ack = (at) => { notes.push(at); ack(at); };
    const ra = new ReadAhead(reader as never, 64 << 10, 16 << 10, ackAtOnce);
    const base = buf.base;
    const a = await ra.read(20_000, undefined, 0); // a lease's offsets start at 0; this opens room for one more piece
    await new Promise((r) => setTimeout(r, 20)); // reads ahead land; the window opens again with this ack
    ra.ack(a!.length);
    const seen = buf.base - base;
    await ra.release(a!.length);
    return { notes, seen, n: a!.length };
  };
  const at = await run(true);
  t.same(at.notes, [at.n], 'the acknowledgement went as its own note');
  t.equal(at.seen, at.n, 'and the home had dropped the written bytes when ack() returned');
  t.same((await run(false)).notes, [], 'without it the acknowledgement rides with the next read ahead');
});
