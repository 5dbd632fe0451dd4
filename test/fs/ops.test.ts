import { createHook } from 'async_hooks';
import { constants } from 'fs';
import type { Ops } from 'fuse-native';
import t from 'tap';
import { LocalClient } from '../../src/client/local';
import { CallerWatch } from '../../src/fs/interrupts';
import { SystemError } from '../../src/kit/errors';
import { Server } from '../../src/node/server';
import { FakeClient, SERVER } from './fake-client';
import { errnoOf, harness } from './harness';

const S = `/${SERVER}`;
const { O_WRONLY, O_RDWR, O_APPEND, O_TRUNC } = constants;

async function withChan(cap = 0) {
  const c = new FakeClient();
  const h = harness(c);
  if ((await h.mkdir(`${S}/a/ch`)).err || (await h.mkdir(`${S}/a/ch/chan`)).err) throw new Error('mkdir failed');
  c.chan(`${S}/a/ch`).cap = cap;
  return { c, h, dir: `${S}/a/ch/chan` };
}

t.test('ops: listings come from the client; .self is hidden and points home', async (t) => {
  const c = new FakeClient();
  const h = harness(c);
  t.same((await h.readdir('/')).value, ['.', '..', SERVER]);
  t.same((await h.readlink('/.self')).value, SERVER);
  t.equal((await h.getattr('/.self')).err, 0);
  t.same((await h.readdir(S)).value, ['.', '..', 'server']);
  t.same((await h.readdir(`${S}/server`)).value, ['.', '..', 'peek', 'members', 'ctl', 'log', 'stk', 'help', 'error']);
  t.equal((await h.getattr(`${S}/nope`)).err, errnoOf('ENOENT'));
  t.equal((await h.getattr(`${S}/chan`)).err, errnoOf('ENOENT'), 'an element dir exists only with its element');
  t.equal((await h.getattr(`${S}/server/bogus`)).err, errnoOf('ENOENT'));
});

t.test('ops: mkdir makes anchors and elements, rmdir removes them', async (t) => {
  const c = new FakeClient();
  const h = harness(c);
  t.equal((await h.mkdir(`${S}/a`)).err, 0);
  t.equal((await h.mkdir(`${S}/a/p`)).err, 0);
  t.equal((await h.mkdir(`${S}/a/p/proc`)).err, 0);
  t.equal((await h.mkdir(`${S}/a/n`)).err, 0);
  t.equal((await h.mkdir(`${S}/a/n/dns`)).err, 0);
  t.equal((await h.mkdir(`${S}/a/j`)).err, 0);
  t.equal((await h.mkdir(`${S}/a/j/@join`)).err, 0);
  for (const want of [`hold ${S}/a`, `hold ${S}/a/p`, `make ${S}/a/p proc null`, `make ${S}/a/n dns null`, `make ${S}/a/j @join null`]) {
    t.ok(c.calls.includes(want), want);
  }
  t.same((await h.readdir(`${S}/a/p`)).value, ['.', '..', 'proc']);
  t.equal((await h.mkdir(`${S}/a/p/chan`)).err, errnoOf('EBUSY'), 'one element per anchor');
  t.equal((await h.mkdir('/Xnew')).err, errnoOf('EPERM'), 'servers are not made by mkdir');
  t.equal((await h.mkdir(`${S}/a/p/server`)).err, errnoOf('EPERM'));
  t.equal((await h.rmdir(`${S}/a/p`)).err, errnoOf('ENOTEMPTY'));
  t.equal((await h.rmdir(`${S}/a/p/chan`)).err, errnoOf('ENOENT'), 'rmdir KIND checks the kind');
  t.equal((await h.rmdir(`${S}/a/p/proc`)).err, 0);
  t.equal((await h.rmdir(`${S}/a/p`)).err, 0);
  t.equal((await h.getattr(`${S}/a/p`)).err, errnoOf('ENOENT'));
  t.equal((await h.rmdir(S)).err, errnoOf('EPERM'));
});

t.test('ops: nothing happens on open; a probe consumes nothing (a snapshot only looks)', async (t) => {
  const { c, h, dir } = await withChan(1);
  await c.send(`${S}/a/ch`, Buffer.from('m'));
  const before = c.calls.length;
  for (const f of ['recv', 'peek', 'cap']) {
    const fd = await h.open(`${dir}/${f}`);
    t.equal(await h.flush(`${dir}/${f}`, fd), 0);
    t.equal(await h.release(`${dir}/${f}`, fd), 0);
  }
  for (const f of ['send', 'close', 'cap']) {
    const fd = await h.open(`${dir}/${f}`, O_WRONLY | O_TRUNC);
    t.equal(await h.ftruncate(`${dir}/${f}`, fd), 0, 'truncation is not an operation');
    t.equal(await h.flush(`${dir}/${f}`, fd), 0);
    t.equal(await h.release(`${dir}/${f}`, fd), 0);
  }
  t.equal(await h.truncate(`${dir}/send`), 0);
  t.same(c.calls.slice(before), [`peek ${S}/a/ch`, `peek ${S}/a/ch`], 'only the snapshots opened for reading (peek, cap) looked');
  t.equal(await h.cat(`${dir}/recv`), 'm', 'the message is still there');
});

t.test('ops: open checks the file mode', async (t) => {
  const { h, dir } = await withChan();
  t.equal(await h.openErr(`${dir}/recv`, O_WRONLY), errnoOf('EACCES'));
  t.equal(await h.openErr(`${dir}/send`, 0), errnoOf('EACCES'));
  t.equal(await h.openErr(`${dir}/send`, O_RDWR), errnoOf('EACCES'));
  t.equal(await h.openErr(`${dir}/cap`, O_RDWR), 0);
  t.equal(await h.openErr(dir, 0), errnoOf('EISDIR'));
});

t.test('ops: send is one message per open-write-close, sent at close', async (t) => {
  const { c, h, dir } = await withChan(2);
  const fd = await h.open(`${dir}/send`, O_WRONLY);
  t.equal(await h.flush(`${dir}/send`, fd), 0, 'a close before any write sends nothing (bash dup2)');
  t.equal(await h.write(`${dir}/send`, fd, 'hel'), 3);
  t.equal(await h.write(`${dir}/send`, fd, 'lo\n'), 3);
  t.same(c.chan(`${S}/a/ch`).buffered, [], 'writes only buffer');
  t.equal(await h.flush(`${dir}/send`, fd), 0);
  t.same(c.chan(`${S}/a/ch`).buffered.map(String), ['hello\n']);
  t.equal(await h.release(`${dir}/send`, fd), 0);
  t.equal(await h.cat(`${dir}/recv`), 'hello\n');
});

t.test('ops: recv is one message per open, sliced over reads, EOF at its end', async (t) => {
  const { c, h, dir } = await withChan(2);
  await c.send(`${S}/a/ch`, Buffer.from('abcdef'));
  await c.send(`${S}/a/ch`, Buffer.from('second'));
  const fd = await h.open(`${dir}/recv`);
  t.same(String(await h.read(`${dir}/recv`, fd, 4, 0)), 'abcd');
  t.same(String(await h.read(`${dir}/recv`, fd, 4, 4)), 'ef');
  t.same(String(await h.read(`${dir}/recv`, fd, 4, 6)), '');
  await h.release(`${dir}/recv`, fd);
  t.equal(await h.cat(`${dir}/recv`), 'second');
});

t.test('ops: later reads of a rendered answer, a flush with nothing to judge and release answer in the same turn of the loop', async (t) => {
  const { c, h, dir } = await withChan(1);
  const whole = String(await h.cat(`${dir}/peek`));
  const fd = await h.open(`${dir}/peek`);
  const first = String(await h.read(`${dir}/peek`, fd, 4, 0));
  const calls = c.calls.length;
  let turned = false;
  setImmediate(() => (turned = true)); // runs once the loop moves on
  const rest = String(await h.read(`${dir}/peek`, fd, 4096, 4));
  const eof = String(await h.read(`${dir}/peek`, fd, 4096, whole.length));
  t.equal(await h.flush(`${dir}/peek`, fd), 0);
  t.equal(await h.release(`${dir}/peek`, fd), 0);
  t.equal(turned, false, 'nothing waited for the next turn of the loop');
  t.equal(first + rest, whole, 'the slices make the answer');
  t.equal(eof, '', 'then end of file');
  t.equal(c.calls.length, calls, 'no client call after the first read');
});

/**
 * Calls op, which replies through done: the promises it made while it ran (a wait on anything
 * makes one), and whether its reply came before the loop's next turn.
 */
function promisesUntilReply<A extends unknown[]>(op: (done: (...a: A) => void) => void): Promise<{ promises: number; sameTurn: boolean; args: A }> {
  let turned = false;
  setImmediate(() => (turned = true));
  let n = 0;
  const hook = createHook({ init: (_id, type) => void (type === 'PROMISE' && n++) });
  return new Promise((resolve) => {
    hook.enable();
    let promises = -1;
    op((...args) => resolve({ promises, sameTurn: !turned, args }));
    hook.disable();
    promises = n;
  });
}

t.test('ops: with an in-process server, getattr, open, every read of peek, flush and release wait for nothing', async (t) => {
  const server = new Server();
  t.teardown(() => server.shutdown());
  const client = new LocalClient(server, { via: 'mount' });
  const ops = harness(client).fs.ops as Required<Ops>;
  const anchor = `/${server.id}/a/ch`;
  const dir = `${anchor}/chan`;
  await client.make(anchor, 'chan', { cap: 3 });
  await client.send(anchor, Buffer.from('x'));
  const want = JSON.stringify(await client.peek(anchor), null, '\t') + '\n';
  for (const p of [`/${server.id}`, anchor, dir, `${dir}/peek`]) {
    const r = await promisesUntilReply<[number, unknown?]>((done) => ops.getattr(p, done));
    t.same(r, { promises: 0, sameTurn: true, args: [0, r.args[1]] }, `getattr ${p}: answered at once`);
  }
  const nope = await promisesUntilReply<[number, unknown?]>((done) => ops.getattr(`/${server.id}/a/nope/chan/peek`, done));
  t.same(nope, { promises: 0, sameTurn: true, args: [errnoOf('ENOENT')] }, 'no element: ENOENT, also at once');
  const open = await promisesUntilReply<[number, number?]>((done) => ops.open(`${dir}/peek`, 0, done));
  t.same([open.promises, open.sameTurn, open.args[0]], [0, true, 0], 'open (which renders the peek) waited for nothing');
  const fd = open.args[1]!;
  const got: string[] = [];
  for (const [len, pos] of [[5, 0], [4096, 5], [4096, want.length]]) {
    const buf = Buffer.alloc(len!);
    const r = await promisesUntilReply<[number]>((done) => ops.read(`${dir}/peek`, fd, buf, len!, pos!, done));
    t.same([r.promises, r.sameTurn], [0, true], `read at ${pos}: answered from the open file`);
    got.push(buf.subarray(0, r.args[0]).toString());
  }
  t.same(got, [want.slice(0, 5), want.slice(5), ''], 'the answer is the peek rendered at open, then end of file');
  t.same(await promisesUntilReply((done) => ops.flush(`${dir}/peek`, fd, done)), { promises: 0, sameTurn: true, args: [0] }, 'flush');
  t.same(await promisesUntilReply((done) => ops.release(`${dir}/peek`, fd, done)), { promises: 0, sameTurn: true, args: [0] }, 'release');
  // The counter sees the waits of a client that has no synchronous path.
  const fake = new FakeClient();
  const slow = harness(fake);
  await slow.mkdir(`${S}/a/ch/chan`);
  const r = await promisesUntilReply((done) => (slow.fs.ops as Required<Ops>).getattr(`${S}/a/ch/chan/peek`, done));
  t.ok(r.promises > 0, 'a client without statNow is waited for');
});

t.test('ops: with an in-process server, the writes of a message wait for nothing; a closed channel is refused at the first', async (t) => {
  const server = new Server();
  t.teardown(() => server.shutdown());
  const client = new LocalClient(server, { via: 'mount' });
  const h = harness(client);
  const ops = h.fs.ops as Required<Ops>;
  const anchor = `/${server.id}/a/ch`;
  await client.make(anchor, 'chan', { cap: 1 });
  const send = `${anchor}/chan/send`;
  const fd = await h.open(send, O_WRONLY);
  for (const part of ['hel', 'lo']) {
    const b = Buffer.from(part);
    const r = await promisesUntilReply<[number]>((done) => ops.write(send, fd, b, b.length, 0, done));
    t.same(r, { promises: 0, sameTurn: true, args: [b.length] }, `write ${part}: taken at once`);
  }
  t.equal(await h.flush(send, fd), 0, 'the close sends');
  await h.release(send, fd);
  t.equal(String(await client.recv(anchor)), 'hello', 'one message, whole');
  await client.close(anchor);
  const closed = await h.open(send, O_WRONLY);
  const b = Buffer.from('x');
  const r = await promisesUntilReply<[number]>((done) => ops.write(send, closed, b, 1, 0, done));
  t.same(r, { promises: 0, sameTurn: true, args: [errnoOf('EPIPE')] }, 'refused at the write, at once');
  t.match(await h.cat(`${anchor}/chan/error`), /^EPIPE/, 'and the error file says why');
  await h.release(send, closed);
});

t.test('ops: a snapshot rendered at open keeps its failure for the first read; the open succeeds', async (t) => {
  for (const how of ['thrown', 'rejected'] as const) {
    const c = new FakeClient();
    const h = harness(c);
    await h.mkdir(`${S}/a/ch`);
    await h.mkdir(`${S}/a/ch/chan`);
    let fail = true;
    const gone = () => new SystemError('EIO', 'the element\'s server does not answer');
    if (how === 'thrown') {
      Object.assign(c, { peekNow: (p: string) => { if (fail) throw gone(); return c.peek(p); } });
    } else {
      const peek = c.peek.bind(c);
      c.peek = async (p: string) => { if (fail) throw gone(); return peek(p); };
    }
    const p = `${S}/a/ch/chan/peek`;
    const fd = await h.open(p);
    t.ok(fd > 0, `${how}: the open succeeds`);
    fail = false;
    t.equal(await h.read(p, fd, 4096, 0), errnoOf('EIO'), `${how}: the first read returns the failure met at open`);
    t.match(await h.cat(`${S}/a/ch/chan/error`), /^EIO: the element's server does not answer/, `${how}: and the error file says it`);
    t.match(String(await h.read(p, fd, 4096, 0)), /"Cap"/, `${how}: the next read renders again`);
    await h.release(p, fd);
    fail = true;
    const probe = await h.open(p);
    t.equal(await h.flush(p, probe), 0, `${how}: an open closed unread reports nothing`);
    t.equal(await h.release(p, probe), 0);
  }
});

t.test('ops: no extended attributes, said so the kernel stops asking (it asks before every write otherwise)', async (t) => {
  const ops = harness(new FakeClient()).fs.ops as Required<Ops>;
  const enosys = -(require('os').constants.errno.ENOSYS as number);
  t.equal(await new Promise((res) => ops.getxattr(`${S}/server/peek`, 'security.capability', 0, (err) => res(err))), enosys);
  t.equal(await new Promise((res) => ops.listxattr(`${S}/server/peek`, (err) => res(err))), enosys);
});

t.test('ops: an interrupted recv answers EINTR and consumed nothing', async (t) => {
  const c = new FakeClient();
  let dead = false;
  const watch = new CallerWatch({ intervalMs: 5, readStatus: async () => (dead ? null : 'SigPnd:\t0\nShdPnd:\t0\n') });
  const h = harness(c, { watch });
  await h.mkdir(`${S}/a/chan`);
  const p = `${S}/a/chan/recv`;
  const fd = await h.open(p);
  const pending = h.read(p, fd);
  await new Promise((r) => setTimeout(r, 20));
  dead = true;
  const t0 = Date.now();
  t.equal(await pending, errnoOf('EINTR'));
  t.ok(Date.now() - t0 < 500, 'answered promptly');
  t.same(c.chan(`${S}/a`).receivers.length, 0, 'the receiver is gone from the channel');
  await h.release(p, fd);
  dead = false;
  const next = h.cat(p);
  await c.send(`${S}/a`, Buffer.from('later'));
  t.equal(await next, 'later', 'the next reader gets the message whole');
  watch.close();
});

t.test('ops: line commands run at the write that completes a line; errors return from it', async (t) => {
  const { c, h, dir } = await withChan();
  const cap = `${dir}/cap`;
  const fd = await h.open(cap, O_WRONLY);
  t.equal(await h.write(cap, fd, '3'), 1, 'no newline yet: nothing runs');
  t.notOk(c.calls.some((x) => x.startsWith('setCap')));
  t.equal(await h.write(cap, fd, '\n'), 1);
  t.ok(c.calls.includes(`setCap ${S}/a/ch 3`), 'ran at the write that completed the line');
  t.equal(await h.write(cap, fd, 'x\n'), errnoOf('EINVAL'), 'a bad line fails its write');
  t.equal(await h.write(cap, fd, '4'), 1);
  t.equal(await h.flush(cap, fd), 0, 'an incomplete last line runs at close');
  t.ok(c.calls.includes(`setCap ${S}/a/ch 4`));
  await h.release(cap, fd);
  t.equal(await h.cat(cap), '4\n');
  t.match(await h.cat(`${dir}/error`), /^EINVAL: capacity must be a non-negative integer/, 'the error file tells why');
  await c.send(`${S}/a/ch`, Buffer.from('x')).catch(() => {});
  t.equal(await h.echo(cap, '5\n'), errnoOf('EBUSY'), 'cap is fixed once the channel was used');
});

t.test('ops: close closes on any write, once per open', async (t) => {
  const { c, h, dir } = await withChan();
  t.equal(await h.echo(`${dir}/close`, '\n'), 0);
  t.equal(c.chan(`${S}/a/ch`).closed, true);
  t.equal(await h.echo(`${dir}/close`, 'x'), errnoOf('EPIPE'), 'closing again says so');
});

t.test('ops: cmd starts the process at the write that completes the JSON', async (t) => {
  const c = new FakeClient();
  const h = harness(c);
  await h.mkdir(`${S}/p/proc`);
  const cmd = `${S}/p/proc/cmd`;
  const fd = await h.open(cmd, O_WRONLY);
  t.equal(await h.write(cmd, fd, '{"Path": "/bin/echo", "Args": ["a}"'), 35);
  t.equal(c.proc(`${S}/p`).cmd, null, 'incomplete: not started');
  t.equal(await h.write(cmd, fd, ']}\n'), 3);
  t.same(c.proc(`${S}/p`).cmd, { Env: null, Dir: '', Path: '/bin/echo', Args: ['a}'], Scrub: false }, 'defaults filled');
  t.equal(await h.write(cmd, fd, '{"Path":"/bin/true"}'), errnoOf('EBUSY'), 'a second start fails its write');
  await h.release(cmd, fd);
  t.match(await h.cat(cmd), /"Path": "\/bin\/echo"/, 'reads back');
  await h.mkdir(`${S}/q/proc`);
  const q = `${S}/q/proc/cmd`;
  t.equal(await h.echo(q, '{"Path": "/bin/x"'), errnoOf('EINVAL'), 'incomplete at close is refused at close');
  t.equal(await h.echo(q, '{"Path": }'), errnoOf('EINVAL'), 'invalid JSON fails its write');
  t.equal(await h.echo(q, '"str"'), errnoOf('EINVAL'), 'not an object');
  t.equal(c.proc(`${S}/q`).cmd, null);
});

t.test('ops: stdout is a lease per open; what one reader did not take stays', async (t) => {
  const c = new FakeClient();
  const h = harness(c);
  await h.mkdir(`${S}/p/proc`);
  const out = `${S}/p/proc/stdout`;
  c.emit(`${S}/p`, 'stdout', 'hello world');
  const fd = await h.open(out);
  t.same(String(await h.read(out, fd, 5)), 'hello');
  const fd2 = await h.open(out);
  t.equal(await h.read(out, fd2, 5), errnoOf('EBUSY'), 'a second reader is refused');
  await h.release(out, fd2);
  await h.release(out, fd);
  await new Promise((r) => setImmediate(r));
  c.emit(`${S}/p`, 'stdout', null);
  t.equal(await h.cat(out), ' world', 'the rest stays for the next reader, then EOF');
});

t.test('ops: wait and exit block until the process exits', async (t) => {
  const c = new FakeClient();
  const h = harness(c);
  await h.mkdir(`${S}/p/proc`);
  await h.echo(`${S}/p/proc/cmd`, '{"Path":"/bin/sleep"}');
  const exit = h.cat(`${S}/p/proc/exit`);
  const wait = h.cat(`${S}/p/proc/wait`);
  await new Promise((r) => setTimeout(r, 20));
  c.exit(`${S}/p`, 0, 'SIGTERM');
  t.equal(await exit, '143\n');
  t.match(JSON.parse(String(await wait)), { Phase: 'exited', Signal: 'SIGTERM' });
  t.equal(await h.echo(`${S}/p/proc/signal`, 'TERM\n'), 0);
  t.equal(await h.echo(`${S}/p/proc/signal`, 'TERM KILL\n'), errnoOf('EINVAL'));
  t.same(c.proc(`${S}/p`).signals, ['TERM']);
});

t.test('ops: stdin writes go through one writer per open, closed at release', async (t) => {
  const c = new FakeClient();
  const h = harness(c);
  await h.mkdir(`${S}/p/proc`);
  const p = `${S}/p/proc/stdin`;
  const fd = await h.open(p, O_WRONLY);
  t.equal(await h.write(p, fd, 'a\n'), 2);
  t.equal(await h.write(p, fd, 'b\n'), 2);
  t.equal(c.proc(`${S}/p`).writers, 1);
  await h.flush(p, fd);
  await h.release(p, fd);
  await new Promise((r) => setImmediate(r));
  t.equal(String(Buffer.concat(c.proc(`${S}/p`).stdin)), 'a\nb\n');
  t.equal(c.proc(`${S}/p`).stdinClosed, true);
});

t.test('ops: dns records: > replaces, >> adds; unset and address', async (t) => {
  const c = new FakeClient();
  const h = harness(c);
  await h.mkdir(`${S}/n/dns`);
  const rec = `${S}/n/dns/records`;
  t.equal(await h.echo(rec, 'a.b. A 1.2.3.4\n', O_APPEND), 0);
  t.equal(await h.echo(rec, 'c.d. A 5.6.7.8\ne.f. A 1.1.1.1\n', O_APPEND), 0);
  t.equal(await h.cat(rec), 'a.b. A 1.2.3.4\nc.d. A 5.6.7.8\ne.f. A 1.1.1.1\n');
  // `>`: the kernel strips O_TRUNC and sends ftruncate(0) on the new handle.
  const fd = await h.open(rec, O_WRONLY);
  await h.ftruncate(rec, fd, 0);
  t.equal(await h.write(rec, fd, 'x.y. A 9.9.9.9\n'), 15);
  t.equal(await h.write(rec, fd, 'z.y. A 9.9.9.8\n'), 15, 'later writes of the same open add');
  await h.flush(rec, fd);
  await h.release(rec, fd);
  t.equal(await h.cat(rec), 'x.y. A 9.9.9.9\nz.y. A 9.9.9.8\n');
  // What Linux really sends for `>`: open, then truncate by path from the same caller.
  const fd2 = await h.open(rec, O_WRONLY);
  await h.truncate(rec, 0);
  t.equal(await h.write(rec, fd2, 'x.y. A 9.9.9.9\nz.y. A 9.9.9.8\n'), 30);
  await h.flush(rec, fd2);
  await h.release(rec, fd2);
  t.equal(await h.cat(rec), 'x.y. A 9.9.9.9\nz.y. A 9.9.9.8\n', 'replaced, not added');
  t.equal(await h.echo(rec, 'bad A 1.2.3.4\n', O_APPEND), errnoOf('EINVAL'));
  t.equal(await h.echo(`${S}/n/dns/unset`, 'x.y.\n'), 0);
  t.equal(await h.cat(rec), 'z.y. A 9.9.9.8\n');
  const empty = await h.open(rec, O_WRONLY);
  await h.ftruncate(rec, empty, 0);
  await h.flush(rec, empty);
  await h.release(rec, empty);
  t.equal(await h.cat(rec), '', '`: > records` empties them');
  t.equal(await h.echo(`${S}/n/dns/address`, '127.0.0.1:5454\n'), 0);
  t.equal(await h.cat(`${S}/n/dns/address`), '127.0.0.1:5454\n');
});

t.test('ops: server files and subscriptions', async (t) => {
  const c = new FakeClient();
  const h = harness(c);
  t.match(await h.cat(`${S}/server/members`), new RegExp(`^${SERVER} circuit://\\S+ alive\n$`));
  t.equal(await h.echo(`${S}/server/ctl`, 'join circuit://10.0.0.1:1/2/Q1\n'), 0);
  t.equal(await h.echo(`${S}/server/ctl`, 'dance\n'), errnoOf('EINVAL'));
  t.ok(c.calls.includes(`join ${S} circuit://10.0.0.1:1/2/Q1`));
  t.equal(await h.cat(`${S}/server/log`), '{"seq":1}\n');
  await h.mkdir(`${S}/j/@join`);
  c.event(`${S}/j`, `/${SERVER}`);
  t.equal(await h.cat(`${S}/j/@join/recv`), `/${SERVER}\n`);
  const ev = `${S}/j/@join/events`;
  const fd = await h.open(ev);
  c.event(`${S}/j`, '/X1');
  c.event(`${S}/j`, '/X2');
  t.equal(String(await h.read(ev, fd, 2)), '/X');
  t.equal(String(await h.read(ev, fd)), '1\n');
  t.equal(String(await h.read(ev, fd)), '/X2\n');
  await h.release(ev, fd);
});

t.test('ops: shutdown answers blocked callers and refuses new ops', async (t) => {
  const { h, dir } = await withChan();
  const fd = await h.open(`${dir}/recv`);
  const pending = h.read(`${dir}/recv`, fd);
  await new Promise((r) => setTimeout(r, 10));
  await h.fs.shutdown();
  t.ok((await pending) as number < 0, 'the blocked read got an error');
  t.equal(await h.read(`${dir}/recv`, fd), errnoOf('EBADF'), 'the handle is gone');
});
