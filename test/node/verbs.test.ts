import t from 'tap';
import { Server } from '../../src/node/server';

/** The 2014 verbs (trysend, tryrecv, env) and stk, on a Server: the same calls the mount and CLI make. */
function server(): Server {
  const s = new Server({ stderr: () => {} });
  t.teardown(() => s.shutdown());
  return s;
}

t.test('verbs: trysend fails with EAGAIN at once when there is no room and nobody waits', async (t) => {
  const s = server();
  const c = `/${s.id}/c`;
  await s.make(c, 'chan', { cap: 1 });
  await s.trysend(c, Buffer.from('one'));
  await t.rejects(s.trysend(c, Buffer.from('two')), { code: 'EAGAIN' }, 'full');
  t.equal((await s.tryrecv(c)).toString(), 'one');
  await t.rejects(s.tryrecv(c), { code: 'EAGAIN' }, 'empty');
  const u = `/${s.id}/u`;
  await s.make(u, 'chan', { cap: 0 });
  await t.rejects(s.trysend(u, Buffer.from('x')), { code: 'EAGAIN' }, 'unbuffered, no receiver');
  const r = s.recv(u);
  await new Promise((res) => setImmediate(res));
  await s.trysend(u, Buffer.from('to the waiting receiver'));
  t.equal((await r).toString(), 'to the waiting receiver');
  const w = s.send(u, Buffer.from('from a blocked sender'));
  await new Promise((res) => setImmediate(res));
  t.equal((await s.tryrecv(u)).toString(), 'from a blocked sender', 'tryrecv takes a waiting sender\'s message');
  await w;
  await s.close(c);
  await t.rejects(s.tryrecv(c), { code: 'EPIPE' }, 'closed and empty: closed, as recv');
  await t.rejects(s.trysend(c, Buffer.from('x')), { code: 'EPIPE' });
  t.same((await s.peek(c)) as object, { Cap: 1, Closed: true, Aborted: false, NumSend: 1, NumRecv: 1 });
});

t.test('verbs: tryrecv on a subscription, and on the wrong kind', async (t) => {
  const s = server();
  const j = `/${s.id}/j`;
  await s.make(j, '@join', null);
  t.equal((await s.tryrecv(j)).toString(), `/${s.id}\n`, 'the server itself joined');
  await t.rejects(s.tryrecv(j), { code: 'EAGAIN' });
  const p = `/${s.id}/p`;
  await s.make(p, 'proc', null);
  await t.rejects(s.tryrecv(p), { message: 'not a channel or subscription' });
  await t.rejects(s.trysend(p, Buffer.from('x')), { message: 'not a channel' });
});

t.test('verbs: env is the process\'s environment, NAME=VALUE each', async (t) => {
  const s = server();
  const p = `/${s.id}/p`;
  await s.make(p, 'proc', null);
  await t.rejects(s.env(p), { code: 'ESRCH' }, 'idle: not started');
  await s.start(p, { Env: ['A=1', 'B=two words'], Dir: '', Path: '/bin/true', Args: null, Scrub: false });
  t.same(await s.env(p), ['A=1', 'B=two words']);
  const q = `/${s.id}/q`;
  await s.make(q, 'proc', { Env: null, Dir: '', Path: 'true', Args: null, Scrub: false });
  t.ok((await s.env(q)).includes(`PATH=${process.env.PATH}`), 'no Env: the daemon\'s own is inherited');
  await t.rejects(s.env(`/${s.id}`), { message: 'not a process or a container' });
});

t.test('verbs: an idle proc answers as an idle container does (one stdio module)', async (t) => {
  const s = server();
  const p = `/${s.id}/p`;
  await s.make(p, 'proc', null);
  await t.rejects(s.wait(p), { code: 'ESRCH', message: /not been started/ });
  await t.rejects(s.openInput(p), { code: 'ESRCH', message: /not been started/ });
  await t.rejects(s.openOutput(p, 'stdout'), { code: 'ESRCH', message: /not been started/ });
  await t.rejects(s.signal(p, 'TERM'), { code: 'ESRCH', message: 'no running process to signal' });
});

t.test('verbs: stk reports the stack, pending operations, handles, loop delay and heap', async (t) => {
  const s = server();
  const r = await s.stk(`/${s.id}`);
  for (const h of ['== main stack', '== pending async operations by kind', '== open handles', '== event loop delay', '== heap']) {
    t.ok(r.includes(`\n${h}`), h);
  }
  t.match(r, /heap used \d+\.\d MiB/);
  t.match(r, new RegExp(`^server ${s.id}  pid ${process.pid}`));
  t.ok(r.endsWith('•••\n'), 'ends as the original\'s dump did');
  await t.rejects(s.stk('/'), { code: 'EINVAL' });
});
