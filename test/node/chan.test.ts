import t from 'tap';
import { LazyAbort, lazyOptions } from '../../src/kit/abort';
import { Chan } from '../../src/node/kinds/chan';

const B = (s: string) => Buffer.from(s);
/** Settles within a few turns of the event loop, or reports 'pending'. */
async function state<T>(p: Promise<T>): Promise<'pending' | 'resolved' | 'rejected'> {
  let s: 'pending' | 'resolved' | 'rejected' = 'pending';
  p.then(() => (s = 'resolved'), () => (s = 'rejected'));
  for (let i = 0; i < 5; i++) await new Promise((r) => setImmediate(r));
  return s;
}

t.test('chan: cap 0 send blocks until a recv takes it', async (t) => {
  const c = new Chan(0);
  const sent = c.send(B('hello'));
  t.equal(await state(sent), 'pending', 'send is blocked');
  t.equal(c.peek().NumSend, 0, 'a blocked send is not counted');
  const got = await c.recv();
  t.equal(got.toString(), 'hello');
  t.equal(await state(sent), 'resolved');
  t.same(c.peek(), { Cap: 0, Closed: false, Aborted: false, NumSend: 1, NumRecv: 1 });
});

t.test('chan: cap 0 recv blocks until a send', async (t) => {
  const c = new Chan(0);
  const r = c.recv();
  t.equal(await state(r), 'pending');
  await c.send(B('x'));
  t.equal((await r).toString(), 'x');
});

t.test('chan: buffered sends return at once up to cap, then block', async (t) => {
  const c = new Chan(2);
  await c.send(B('1'));
  await c.send(B('2'));
  const third = c.send(B('3'));
  t.equal(await state(third), 'pending', 'a full buffer blocks');
  t.equal(c.peek().NumSend, 2);
  t.equal((await c.recv()).toString(), '1');
  t.equal(await state(third), 'resolved', 'the blocked sender moved into the buffer on recv');
  t.equal(c.peek().NumSend, 3);
  t.equal((await c.recv()).toString(), '2');
  t.equal((await c.recv()).toString(), '3', 'order kept');
});

t.test('chan: close lets the buffer drain, then recv fails channel closed', async (t) => {
  const c = new Chan(3);
  await c.send(B('a'));
  await c.send(B('b'));
  c.close();
  t.equal(c.peek().Closed, true, 'closed at once');
  t.equal((await c.recv()).toString(), 'a');
  t.equal((await c.recv()).toString(), 'b');
  await t.rejects(c.recv(), { message: 'channel closed' });
});

t.test('chan: close fails a waiting receiver with channel closed', async (t) => {
  const c = new Chan(0);
  const r = c.recv();
  c.close();
  await t.rejects(r, { message: 'channel closed' });
});

t.test('chan: send after close fails; close twice fails', async (t) => {
  const c = new Chan(1);
  c.close();
  await t.rejects(c.send(B('late')), { message: 'channel closed' });
  t.throws(() => c.close(), { message: 'channel already closed' });
  t.equal(c.peek().NumSend, 0);
});

t.test('chan: scrub aborts blocked senders and receivers, and later calls', async (t) => {
  const c = new Chan(0);
  const s = c.send(B('s'));
  const c2 = new Chan(0);
  const r = c2.recv();
  c.scrub();
  c2.scrub();
  await t.rejects(s, { message: 'channel aborted' });
  await t.rejects(r, { message: 'channel aborted' });
  await t.rejects(c.send(B('x')), { message: 'channel aborted' });
  await t.rejects(c.recv(), { message: 'channel aborted' });
  t.equal(c.peek().Aborted, true);
});

t.test('chan: scrub drops buffered messages', async (t) => {
  const c = new Chan(2);
  await c.send(B('x'));
  c.scrub();
  await t.rejects(c.recv(), { message: 'channel aborted' });
});

t.test('chan: an aborted send enqueued nothing', async (t) => {
  const c = new Chan(0);
  const ac = new AbortController();
  const s = c.send(B('gone'), { signal: ac.signal });
  t.equal(await state(s), 'pending');
  ac.abort();
  await t.rejects(s, { code: 'EINTR' });
  t.equal(c.peek().NumSend, 0, 'NumSend unchanged');
  const r = c.recv();
  t.equal(await state(r), 'pending', 'a later recv does not get the aborted message');
  await c.send(B('real'));
  t.equal((await r).toString(), 'real');
});

t.test('chan: an already aborted signal fails send and recv without effect', async (t) => {
  const c = new Chan(1);
  const ac = new AbortController();
  ac.abort();
  await t.rejects(c.send(B('x'), { signal: ac.signal }), { code: 'EINTR' });
  await t.rejects(c.recv({ signal: ac.signal }), { code: 'EINTR' });
  t.same(c.peek(), { Cap: 1, Closed: false, Aborted: false, NumSend: 0, NumRecv: 0 });
});

t.test('chan: an aborted recv took nothing', async (t) => {
  const c = new Chan(0);
  const ac = new AbortController();
  const r = c.recv({ signal: ac.signal });
  ac.abort();
  await t.rejects(r, { code: 'EINTR' });
  const s = c.send(B('kept'));
  t.equal(await state(s), 'pending', 'no receiver is waiting any more: cap 0 send blocks');
  t.equal((await c.recv()).toString(), 'kept');
  await s;
  t.equal(c.peek().NumRecv, 1);
});

t.test('chan: unrecv puts a message back first', async (t) => {
  const c = new Chan(3);
  await c.send(B('1'));
  await c.send(B('2'));
  const m = await c.recv();
  c.unrecv(m);
  t.same(c.peek(), { Cap: 3, Closed: false, Aborted: false, NumSend: 2, NumRecv: 0 }, 'counts as if never received');
  t.equal((await c.recv()).toString(), '1', 'it comes first');
  t.equal((await c.recv()).toString(), '2');
});

t.test('chan: unrecv goes to a waiting receiver', async (t) => {
  const c = new Chan(0);
  const s = c.send(B('m'));
  const m = await c.recv();
  await s;
  const r = c.recv();
  c.unrecv(m);
  t.equal((await r).toString(), 'm');
  t.same(c.peek(), { Cap: 0, Closed: false, Aborted: false, NumSend: 1, NumRecv: 1 });
});

t.test('chan: unrecv on a closed channel makes the message receivable again', async (t) => {
  const c = new Chan(1);
  await c.send(B('last'));
  c.close();
  const m = await c.recv();
  c.unrecv(m);
  t.equal((await c.recv()).toString(), 'last');
  await t.rejects(c.recv(), { message: 'channel closed' });
});

t.test('chan: a send blocked before close still goes through; then recv fails', async (t) => {
  const c = new Chan(0);
  const s = c.send(B('inflight'));
  c.close();
  t.equal((await c.recv()).toString(), 'inflight');
  await s;
  await t.rejects(c.recv(), { message: 'channel closed' });
});

t.test('chan: after an unrecv, the buffer does not take blocked senders beyond its capacity', async (t) => {
  const c = new Chan(1);
  await c.send(B('A'));
  const sb = c.send(B('B'));
  t.equal(await state(sb), 'pending', 'B blocks on the full buffer');
  const a = await c.recv(); // B moves into the buffer
  await sb;
  c.unrecv(a); // the receiver died: A goes back first; the buffer holds A and B
  const sc = c.send(B('C'));
  t.equal(await state(sc), 'pending', 'C blocks');
  t.equal((await c.recv()).toString(), 'A');
  t.equal(await state(sc), 'pending', 'B alone fills the cap-1 buffer: C must still block');
  const st = c.peek();
  t.ok(st.NumSend - st.NumRecv <= st.Cap, `pending ${st.NumSend - st.NumRecv} within cap ${st.Cap}`);
  t.equal((await c.recv()).toString(), 'B');
  t.equal(await state(sc), 'resolved', 'now C moves in');
  t.equal((await c.recv()).toString(), 'C');
});

t.test('chan: setCap only before first use', async (t) => {
  const c = new Chan(0);
  c.setCap(5);
  t.equal(c.peek().Cap, 5);
  await c.send(B('x'));
  t.throws(() => c.setCap(1), { code: 'EBUSY' });
  const d = new Chan(0);
  const r = d.recv();
  t.throws(() => d.setCap(2), { code: 'EBUSY' }, 'a waiting receiver is a use');
  d.scrub();
  await r.catch(() => {});
});

t.test('chan: negative or non-integer capacity is EINVAL', async (t) => {
  for (const bad of [-1, 1.5, NaN, Infinity, -0.5]) {
    t.throws(() => new Chan(bad), { code: 'EINVAL' }, `new Chan(${bad})`);
    t.throws(() => new Chan(0).setCap(bad), { code: 'EINVAL' }, `setCap(${bad})`);
  }
});

t.test('chan: peek shape', async (t) => {
  const c = new Chan(3);
  const p = c.peek();
  t.same(Object.keys(p), ['Cap', 'Closed', 'Aborted', 'NumSend', 'NumRecv']);
  t.same(p, { Cap: 3, Closed: false, Aborted: false, NumSend: 0, NumRecv: 0 });
});

t.test('chan: a lazy abort (a served request) works as a signal does, and makes no signal', async (t) => {
  const c = new Chan(0);
  const a = new LazyAbort();
  const opts = lazyOptions(a, undefined);
  const s = c.send(B('gone'), opts);
  t.equal(await state(s), 'pending');
  a.abort();
  await t.rejects(s, { code: 'EINTR' });
  t.equal(c.peek().NumSend, 0, 'NumSend unchanged');
  const b = new LazyAbort();
  const r = c.recv(lazyOptions(b, undefined));
  b.abort();
  await t.rejects(r, { code: 'EINTR' });
  const kept = c.send(B('kept'));
  t.equal(await state(kept), 'pending', 'no receiver is waiting any more');
  await t.rejects(c.recv(lazyOptions(b, undefined)), { code: 'EINTR' }, 'an aborted one fails at once');
  t.equal((await c.recv()).toString(), 'kept');
  await kept;

  // what waits and what does not: the signal is made only when something reads it
  const made = Object.getOwnPropertyDescriptor(AbortController.prototype, 'signal')!;
  let reads = 0;
  Object.defineProperty(AbortController.prototype, 'signal', { ...made, get() { reads++; return made.get!.call(this); } });
  t.teardown(() => Object.defineProperty(AbortController.prototype, 'signal', made));
  const d = new Chan(1);
  const waiting = d.recv(lazyOptions(new LazyAbort(), undefined));
  await d.send(B('m'), lazyOptions(new LazyAbort(), undefined));
  t.equal((await waiting).toString(), 'm');
  await d.send(B('n'), lazyOptions(new LazyAbort(), undefined));
  t.equal((await d.recv(lazyOptions(new LazyAbort(), undefined))).toString(), 'n');
  t.equal(reads, 0, 'no AbortSignal made for a recv that waited, a send and a recv that did not');
  const late = new LazyAbort();
  late.abort();
  t.equal(lazyOptions(late, undefined).signal.aborted, true, 'read after the abort: a signal that has aborted');
  t.equal(reads, 1);
});
