import t from 'tap';
import { Server } from '../../src/node/server';
import { Subscription } from '../../src/node/kinds/subscription';
import { LocalView } from '../../src/node/view';

t.test('subscription: @join starts with the server itself; recv gives /Xid and a newline', async (t) => {
  const s = new Server({ stderr: () => {} });
  t.teardown(() => s.shutdown());
  const p = `/${s.id}/j`;
  await s.make(p, '@join', null);
  t.same(await s.peek(p), { Source: 'join', Pending: 1, Closed: false });
  t.equal((await s.recv(p)).toString(), `/${s.id}\n`);
  t.same(await s.peek(p), { Source: 'join', Pending: 0, Closed: false });
});

t.test('subscription: @leave starts empty', async (t) => {
  const s = new Server({ stderr: () => {} });
  t.teardown(() => s.shutdown());
  const p = `/${s.id}/l`;
  await s.make(p, '@leave', null);
  t.same(await s.peek(p), { Source: 'leave', Pending: 0, Closed: false });
});

t.test('subscription: events from the view, in order, lossless', async (t) => {
  const view = new LocalView(() => ({ id: 'Xaaaaaaaaaaaaaaaa', url: '', state: 'alive' }));
  const sub = new Subscription('leave', view);
  const waiting = sub.recv();
  view.emit('leave', { id: 'X1', url: '', state: 'dead' });
  view.emit('leave', { id: 'X2', url: '', state: 'dead' });
  view.emit('leave', { id: 'X3', url: '', state: 'dead' });
  t.equal(await waiting, '/X1', 'a waiting recv gets the first event');
  t.equal(await sub.recv(), '/X2');
  t.equal(await sub.recv(), '/X3');
  view.emit('join', { id: 'X4', url: '', state: 'alive' });
  t.equal(sub.peek().Pending, 0, 'a leave subscription ignores joins');
});

t.test('subscription: scrub aborts waiters, later recvs and unsubscribes', async (t) => {
  const view = new LocalView(() => ({ id: 'Xaaaaaaaaaaaaaaaa', url: '', state: 'alive' }));
  const sub = new Subscription('join', view);
  await sub.recv(); // the initial event
  const w = sub.recv();
  sub.scrub();
  await t.rejects(w, { message: 'aborted' });
  await t.rejects(sub.recv(), { message: 'aborted' });
  t.equal(view.listenerCount('join'), 0, 'no listener left behind');
  t.equal(sub.peek().Closed, true);
});

t.test('subscription: scrub through the server aborts a waiting recv and removes the element', async (t) => {
  const s = new Server({ stderr: () => {} });
  t.teardown(() => s.shutdown());
  const p = `/${s.id}/j`;
  await s.make(p, '@join', null);
  await s.recv(p);
  const w = s.recv(p);
  await s.scrub(p);
  await t.rejects(w, { message: 'aborted' });
  t.equal(await s.peek(p), null);
});

t.test('subscription: an aborted recv takes nothing; unrecv puts an event back first', async (t) => {
  const view = new LocalView(() => ({ id: 'Xaaaaaaaaaaaaaaaa', url: '', state: 'alive' }));
  const sub = new Subscription('leave', view);
  const ac = new AbortController();
  const r = sub.recv(ac.signal);
  ac.abort();
  await t.rejects(r, { code: 'EINTR' });
  view.emit('leave', { id: 'X1', url: '', state: 'dead' });
  t.equal(sub.peek().Pending, 1, 'the event was queued, not handed to the aborted waiter');
  const ev = await sub.recv();
  view.emit('leave', { id: 'X2', url: '', state: 'dead' });
  sub.unrecv(ev);
  t.equal(await sub.recv(), '/X1');
  t.equal(await sub.recv(), '/X2');
});

t.test('subscription: an event put back goes to a receiver that is already waiting', async (t) => {
  const view = new LocalView(() => ({ id: 'Xaaaaaaaaaaaaaaaa', url: '', state: 'alive' }));
  const sub = new Subscription('leave', view);
  view.emit('leave', { id: 'X1', url: '', state: 'dead' });
  const ev = await sub.recv(); // handed to a client that then dies
  const waiting = sub.recv(); // another client waits meanwhile
  sub.unrecv(ev);
  const got = await Promise.race([waiting, new Promise((r) => setTimeout(() => r('still waiting'), 500))]);
  t.equal(got, '/X1', 'the waiting receiver gets the event back at once');
  t.equal(sub.peek().Pending, 0);
});
