import { constants } from 'fs';
import t from 'tap';
import { CallerWatch } from '../../src/fs/interrupts';
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

t.test('ops: nothing happens on open; a probe consumes nothing', async (t) => {
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
  t.same(c.calls.slice(before), [], 'no client calls');
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
