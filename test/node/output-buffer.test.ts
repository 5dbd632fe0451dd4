import t from 'tap';
import { OutputBuffer } from '../../src/node/output-buffer';

const B = (s: string) => Buffer.from(s);

t.test('output-buffer: one lease at a time, EBUSY for a second', async (t) => {
  const b = new OutputBuffer('stdout');
  const l = b.acquire();
  t.throws(() => b.acquire(), { code: 'EBUSY', message: 'stdout already has a reader' });
  await l.release();
  const l2 = b.acquire();
  t.ok(l2, 'free again after release');
  await t.rejects(l.read(10), { code: 'EBUSY' }, 'a released lease cannot read');
});

t.test('output-buffer: bytes flow as they arrive', async (t) => {
  const b = new OutputBuffer('stdout');
  const l = b.acquire();
  const r = l.read(100);
  b.push(B('hi\n'));
  t.equal((await r)!.toString(), 'hi\n', 'a waiting read gets the first bytes without an end');
});

t.test('output-buffer: unread bytes stay for the next reader', async (t) => {
  const b = new OutputBuffer('stdout');
  b.push(B('0123456789'));
  const l = b.acquire();
  t.equal((await l.read(4))!.toString(), '0123');
  await l.release();
  const l2 = b.acquire();
  t.equal((await l2.read(100))!.toString(), '456789');
});

t.test('output-buffer: an aborted read takes nothing', async (t) => {
  const b = new OutputBuffer('stdout');
  const l = b.acquire();
  const ac = new AbortController();
  const r = l.read(10, { signal: ac.signal });
  ac.abort();
  await t.rejects(r, { code: 'EINTR' });
  b.push(B('abc'));
  t.equal((await l.read(10))!.toString(), 'abc');
});

t.test('output-buffer: abandon gives in-flight bytes back first', async (t) => {
  const b = new OutputBuffer('stdout');
  b.push(B('first'));
  b.push(B('second'));
  const l = b.acquire();
  t.equal((await l.read(5))!.toString(), 'first');
  l.abandon();
  const l2 = b.acquire();
  t.equal((await l2.read(100))!.toString(), 'firstsecond', 'nothing lost, order kept');
});

t.test('output-buffer: a later read confirms the previous one; abandon then returns only the last', async (t) => {
  const b = new OutputBuffer('stdout');
  b.push(B('aaabbbccc'));
  const l = b.acquire();
  t.equal((await l.read(3))!.toString(), 'aaa');
  t.equal((await l.read(3))!.toString(), 'bbb');
  l.abandon();
  const l2 = b.acquire();
  t.equal((await l2.read(100))!.toString(), 'bbbccc');
});

t.test('output-buffer: end gives null once drained', async (t) => {
  const b = new OutputBuffer('stdout');
  b.push(B('tail'));
  b.end();
  const l = b.acquire();
  t.equal((await l.read(100))!.toString(), 'tail');
  t.equal(await l.read(100), null);
  const w = new OutputBuffer('stderr').acquire();
  const pending = w.read(10);
  w.buf.end();
  t.equal(await pending, null, 'a waiting read wakes with null at end');
});

t.test('output-buffer: pushes after end are ignored', async (t) => {
  const b = new OutputBuffer('stdout');
  b.end();
  b.push(B('late'));
  t.equal(b.buffered, 0);
});

t.test('output-buffer: back-pressure above the window, onDrain fires when it falls below', async (t) => {
  const b = new OutputBuffer('stdout', 10);
  t.equal(b.push(B('12345')), true, 'below the window');
  t.equal(b.push(B('67890')), false, 'at the window: pause');
  t.equal(b.push(B('x')), false, 'still above');
  let drained = 0;
  b.onDrain(() => drained++);
  t.equal(drained, 0);
  const l = b.acquire();
  await l.read(1);
  t.equal(drained, 0, 'still a window unread');
  await l.read(2, undefined, 1);
  t.equal(drained, 1, 'fired once the unread bytes fell below the window');
  t.equal(b.buffered, 10, 'the bytes read are still held until acknowledged');
  let now = 0;
  b.onDrain(() => now++);
  t.equal(now, 1, 'onDrain below the window calls back at once');
  t.equal(b.total, 11);
});

t.test('output-buffer: bytes read and not acknowledged count again once the lease ends, and in all up to four windows', async (t) => {
  const b = new OutputBuffer('stdout', 10);
  b.push(B('0123456789'));
  const l = b.acquire();
  await l.readAhead(10);
  t.equal(b.full, false, 'read ahead: nothing unread');
  b.push(B('abcdefghij'));
  t.equal(b.full, true, 'a window unread again');
  await l.readAhead(10);
  b.push(B('klmnopqrst'));
  await l.readAhead(10);
  b.push(B('uvwxyz123'));
  t.equal(b.full, false, '39 bytes held, 9 unread');
  await l.readAhead(10);
  b.push(B('4'));
  t.equal(b.full, true, 'four windows held in all: the producer waits whatever was read');
  l.abandon();
  b.acquire().ack(0);
  t.equal(b.full, true, 'a vanished reader leaves its bytes unread for the next');
});

t.test('output-buffer: a read at an earlier offset serves the same bytes again (its answer was lost)', async (t) => {
  const b = new OutputBuffer('stdout');
  b.push(B('abcdef'));
  const l = b.acquire();
  t.equal((await l.read(3, undefined, 0))!.toString(), 'abc');
  t.equal((await l.read(3, undefined, 0))!.toString(), 'abc', 'not acknowledged: served again');
  t.equal((await l.read(10, undefined, 3))!.toString(), 'def', 'reading at 3 acknowledges abc');
  await t.rejects(l.read(10, undefined, 1), { code: 'EINVAL' }, 'before what was acknowledged');
  await t.rejects(l.read(10, undefined, 9), { code: 'EINVAL' }, 'past what was read');
  await l.release(4);
  const l2 = b.acquire();
  t.equal((await l2.read(10))!.toString(), 'ef', 'release at 4: the rest stays for the next reader');
});

t.test('output-buffer: ack without a read (a reader that wrote part of its last read out)', async (t) => {
  const b = new OutputBuffer('stdout');
  b.push(B('0123456789'));
  const l = b.acquire();
  t.equal((await l.read(10))!.toString(), '0123456789');
  l.ack(6);
  t.equal(b.buffered, 4);
  l.abandon();
  t.equal((await b.acquire().read(10))!.toString(), '6789', 'exactly what was not acknowledged');
});

t.test('output-buffer: readNow copies what is here across chunks, or says it would wait', async (t) => {
  const b = new OutputBuffer('stdout');
  const l = b.acquire();
  const into = Buffer.alloc(8);
  t.equal(l.readNow(into, 8, 0), undefined, 'nothing here yet: the read would wait');
  b.push(B('abc'));
  b.push(B('defgh'));
  b.push(B('ijk'));
  t.equal(l.readNow(into, 8, 0), 8);
  t.equal(into.toString(), 'abcdefgh', 'one copy across chunk boundaries');
  t.equal(l.readNow(into, 2, 99), undefined, 'an offset it was never given: left to read(), which refuses it');
  t.equal(l.readNow(into, 2, 4), 2, 'an earlier offset serves the same bytes again');
  t.equal(into.subarray(0, 2).toString(), 'ef');
  t.equal(b.buffered, 7, 'reading at 4 acknowledged the first four bytes');
  t.equal(l.readNow(into, 8, 6), 5);
  t.equal(into.subarray(0, 5).toString(), 'ghijk');
  t.equal(l.readNow(into, 8, 11), undefined, 'all read: it would wait');
  b.end();
  t.equal(l.readNow(into, 8, 11), null, 'then the end');
  await l.release();
  t.equal(l.readNow(into, 8, 11), undefined, 'a released lease leaves it to read(), which refuses it');
});

t.test('output-buffer: a read ahead with others queued behind waits briefly for a fuller piece; a lone one or a trickle does not', async (t) => {
  const b = new OutputBuffer('stdout');
  const l = b.acquire();
  b.push(Buffer.alloc(20_000, 1));
  const zeroth = l.readAhead(100_000);
  const first = l.readAhead(100_000);
  const second = l.readAhead(100_000);
  t.same((await zeroth).map((x) => (x instanceof Buffer ? x.length : x)), [0, 20_000], 'the first read of a lease is never held');
  b.push(Buffer.alloc(20_000, 1));
  setImmediate(() => b.push(Buffer.alloc(30_000, 2)));
  const [at, got] = await first;
  t.same([at, got?.length], [20_000, 50_000], 'a flowing stream: the next piece took what came next too');
  b.push(Buffer.alloc(20_000, 3));
  const [at2, got2] = await second;
  t.same([at2, got2?.length], [70_000, 20_000], 'the last one in line answers with what is here');
  b.push(B('a line\n'));
  const p3 = l.readAhead(100_000);
  const p4 = l.readAhead(100_000);
  const [, got3] = await p3;
  t.equal(got3?.toString(), 'a line\n', 'a trickle is answered at once, even with a read queued behind');
  b.push(Buffer.alloc(20_000));
  b.end();
  const [, got4] = await p4;
  t.equal(got4?.length, 20_000);
  t.same(await l.readAhead(10), [110_007, null], 'then the end');
});

t.test('output-buffer: a lend asked for and not made gives the pipe back to the pump once a reader waits with nothing here', async (t) => {
  const buf = new OutputBuffer('stdout', 1 << 20);
  const calls: string[] = [];
  // the pump's answer: the pipe (fd 42) once asked; it stops reading from the first ask
  buf.lender = { lend: () => (calls.push('lend'), 42), unlend: () => void calls.push('unlend') };
  buf.push(Buffer.from('abc'));
  const l = buf.acquire();
  t.equal(l.lendPipe(0, () => {}), undefined, 'not lent while bytes are here');
  t.same(calls, ['lend'], 'the pump was asked (and stopped reading)');
  t.same(await l.read(10, undefined, 0), Buffer.from('abc'));
  // nothing here and no lend made: a read that waits must not wait on a pump that stopped
  const waiting = l.read(10, undefined, 3);
  t.same(calls, ['lend', 'unlend'], 'the pump reads again');
  buf.push(Buffer.from('de'));
  t.same(await waiting, Buffer.from('de'));
  t.equal(l.lendPipe(5, () => {}), 42, 'a later lend asks again, and is made with nothing here');
  t.same(calls, ['lend', 'unlend', 'lend']);
});

/** The next reader's lease (once the last one has ended), read through everything buffered. */
async function readBuffered(buf: OutputBuffer): Promise<string> {
  const next = await buf.acquireNext();
  const got: Buffer[] = [];
  for (let at = 0; at < buf.buffered; ) {
    const b = (await next.read(10, undefined, at))!;
    got.push(b);
    at += b.length;
  }
  return Buffer.concat(got).toString();
}

t.test('output-buffer: a pipe back from the FUSE thread: its reader came back at the lend, so every byte before it was delivered', async (t) => {
  const buf = new OutputBuffer('stdout', 1 << 20);
  buf.lender = { lend: () => 42, unlend: () => {} };
  buf.push(B('abc'));
  const l = buf.acquire();
  t.same(await l.read(10, undefined, 0), B('abc'));
  t.equal(l.lendPipe(3, () => {}), 42);
  // one read of 'defg' at the pipe, which is also the answer kept: 'abc' was passed on
  l.reclaim(4, B('defg'));
  l.abandon();
  const next = buf.acquire();
  t.same(await next.read(10, undefined, 0), B('defg'), 'the next reader gets the kept answer, not abc again');
});

t.test('output-buffer: a pipe back from the pump\'s push: bytes before the lend stay until its reader acknowledged them', async (t) => {
  for (const [acked, want] of [[1, 'bcdefg'], [5, 'fg']] as const) {
    const buf = new OutputBuffer('stdout', 1 << 20);
    const events: { done?: (r: { acked: number; tail: number; keep: Buffer }) => void } = {};
    buf.lender = {
      lend: () => 42,
      unlend: () => {},
      push: (_fd, _at, _prefix, h) => ((events.done = h.done), true),
      pushStop: () => {},
    };
    buf.push(B('abc'));
    const l = buf.acquire();
    // pushPipe reads 'abc' (the prefix), lends the pipe at 3, and the pump pushes it all
    const [from, pushed] = await l.pushPipe(() => 7, () => {}, () => {}, new AbortController().signal);
    t.same([from, pushed], [0, true]);
    // the pump read 'defg' from the pipe; its reader acknowledged up to `acked`
    const keep = B('abcdefg').subarray(Math.max(acked, 3));
    events.done!({ acked, tail: 7, keep });
    l.abandon();
    t.equal(await readBuffered(buf), want, `acknowledged up to ${acked}: the next reader gets ${want}`);
  }
});

t.test('output-buffer: released while the pump pushed, at an offset before the lend: the bytes from there on go to the next reader', async (t) => {
  const buf = new OutputBuffer('stdout', 1 << 20);
  let done: ((r: { acked: number; tail: number; keep: Buffer }) => void) | undefined;
  buf.lender = { lend: () => 42, unlend: () => {}, push: (_fd, _at, _prefix, h) => ((done = h.done), true), pushStop: () => {} };
  buf.push(B('abcdef'));
  const l = buf.acquire();
  t.same(await l.pushPipe(() => 7, () => {}, () => {}, new AbortController().signal), [0, true], 'pushed from 0, prefix abcdef');
  // the reader passed on 'ab' (acknowledged 2) and releases at 4: it wrote 'cd' out too
  const released = l.release(4);
  done!({ acked: 2, tail: 9, keep: B('ghi') }); // the pump read 'ghi' from the pipe, not acknowledged
  await released;
  t.equal(await readBuffered(buf), 'efghi', 'nothing the reader passed on, nothing lost');
});
