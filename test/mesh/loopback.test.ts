/**
 * The mesh end to end on loopback: real daemons joined with -j, the real CLI dialling a server
 * other than the element's home, kill -9, and `circuit join` merging two clusters.
 */
import t from 'tap';
import { createHash } from 'node:crypto';
import { cli, cliBackground, eventually, startServer, type Running } from '../helpers/daemon';

const started: Running[] = [];
t.teardown(async () => {
  const live = started.filter((s) => s.proc.exitCode === null && s.proc.signalCode === null);
  await Promise.all(live.map((s) => s.stop('SIGKILL')));
});

/** A daemon; its id from its attach line (the helper's first `ls /` line is another server's once joined). */
async function server(args: string[] = []): Promise<Running> {
  const s = await startServer(['--no-mount', ...args]);
  started.push(s);
  const m = await eventually(() => /Attaching \/(X[0-9a-f]{16}) as server/.exec(s.stderr()), 5000);
  return Object.assign(s, { id: m![1] });
}

async function ls(s: Running): Promise<string[]> {
  const r = await cli(s.url, ['ls', '/']);
  return r.stdout.trim().split('\n').filter(Boolean).sort();
}

const ids = (xs: Running[]) => xs.map((x) => '/' + x.id).sort();

t.test('mesh: three daemons joined with -j, each lists all three', async (t) => {
  const a = await server();
  const t0 = Date.now();
  const b = await server(['-j', a.url]);
  const c = await server(['-j', a.url]);
  for (const s of [a, b, c]) await eventually(async () => JSON.stringify(await ls(s)) === JSON.stringify(ids([a, b, c])), 5000);
  t.comment(`join visibility: all three list all three ${Date.now() - t0} ms after the second start began (includes process start)`);
  t.pass('one view');

  t.test('mesh: channel ops through a server that is not the home', async (t) => {
    const ch = `/${a.id}/mesh/ch`;
    t.equal((await cli(b.url, ['mkchan', ch, '2'])).code, 0);
    t.equal((await cli(c.url, ['send', ch], 'hello across')).code, 0);
    const p = JSON.parse((await cli(b.url, ['peek', ch])).stdout);
    t.equal(p.NumSend, 1, 'peek through b shows the send');
    const r = await cli(c.url, ['recv', ch]);
    t.equal(r.stdout, 'hello across');
    // A blocked recv through c, answered by a send through b.
    const waiting = cliBackground(c.url, ['recv', ch]);
    const exited = new Promise((res) => waiting.once('exit', res));
    await new Promise((res) => setTimeout(res, 300));
    t.equal((await cli(b.url, ['send', ch], 'second')).code, 0);
    await exited;
    t.equal(waiting.output(), 'second');
  });

  t.test('mesh: 100 MB of stdout across servers, no byte lost', async (t) => {
    const p = `/${a.id}/mesh/big`;
    const n = 100_000_000;
    const cmd = { Env: null, Dir: '', Path: '/bin/sh', Args: ['-c', `yes 0123456789abcdef | head -c ${n}`], Scrub: false };
    t.equal((await cli(b.url, ['mkproc', p], JSON.stringify(cmd))).code, 0);
    const line = Buffer.from('0123456789abcdef\n');
    const want = createHash('sha256');
    for (let left = n; left > 0; left -= line.length) want.update(left >= line.length ? line : line.subarray(0, left));
    const t0 = Date.now();
    const r = await cli(c.url, ['stdout', p]);
    const ms = Date.now() - t0;
    t.equal(r.code, 0, r.stderr);
    t.equal(r.out.length, n, 'byte count');
    t.equal(createHash('sha256').update(r.out).digest('hex'), want.digest('hex'), 'checksum');
    t.comment(`100 MB via a middle server in ${ms} ms (${((n / ms) * 1000 / 1e6).toFixed(0)} MB/s)`);
    const w = await cli(b.url, ['wait', p]);
    t.equal(w.code, 0, w.stderr);
    t.match(w.stdout, /"Exit"|"exit"|0/);
  });

  t.test('mesh: @join and @leave through the CLI; kill -9 fails calls fast', async (t) => {
    const j = `/${b.id}/mesh/join`;
    const l = `/${c.id}/mesh/leave`;
    t.equal((await cli(a.url, ['mk@join', j])).code, 0);
    t.equal((await cli(a.url, ['mk@leave', l])).code, 0);
    const got: string[] = [];
    for (let i = 0; i < 3; i++) got.push((await cli(a.url, ['recv', j])).stdout.trim());
    t.same(got.sort(), ids([a, b, c]), '@join starts with the whole view');
    const d = await server(['-j', b.url]);
    t.equal((await cli(c.url, ['recv', j])).stdout.trim(), '/' + d.id, '@join reports a new server');
    // A call to d blocked in flight, through a.
    t.equal((await cli(a.url, ['mkchan', `/${d.id}/q`, '0'])).code, 0);
    const blocked = cliBackground(a.url, ['recv', `/${d.id}/q`]);
    const blockedExit = new Promise<{ code: number | null; at: number }>((res) => blocked.once('exit', (code) => res({ code, at: Date.now() })));
    await new Promise((res) => setTimeout(res, 300));
    const killed = Date.now();
    d.proc.kill('SIGKILL');
    const leave = await cli(b.url, ['recv', l]);
    const detect = Date.now() - killed;
    t.equal(leave.stdout.trim(), '/' + d.id, '@leave reports the dead server');
    t.comment(`kill -9 detected (@leave delivered through the CLI) in ${detect} ms`);
    t.ok(detect < 4000, 'within 4 s on loopback');
    const { code, at } = await blockedExit;
    t.equal(code, 1, 'the blocked recv fails');
    t.match(blocked.output(), /circuit: .*(X[0-9a-f]{16}|gone|answering|unreachable)/);
    t.comment(`blocked call failed with "${blocked.output().trim()}" ${at - killed} ms after the kill`);
    t.ok(at - killed < 6000, 'within the session deadline');
    const t1 = Date.now();
    const r = await cli(a.url, ['peek', `/${d.id}/q`]);
    t.equal(r.code, 1);
    t.match(r.stderr, /not in this server's view|unreachable|gone/);
    t.ok(Date.now() - t1 < 3000, 'a new call to it fails at once');
  });
});

t.test('mesh: circuit join merges two clusters', async (t) => {
  const a = await server();
  const b = await server(['-j', a.url]);
  const x = await server();
  const y = await server(['-j', x.url]);
  await eventually(async () => (await ls(a)).length === 2 && (await ls(x)).length === 2, 5000);
  const r = await cli(b.url, ['join', '/' + b.id, x.url]);
  t.equal(r.code, 0, r.stderr);
  for (const s of [a, b, x, y]) await eventually(async () => JSON.stringify(await ls(s)) === JSON.stringify(ids([a, b, x, y])), 8000);
  t.pass('all four see all four');
  const bad = await cli(a.url, ['join', '/' + a.id, 'circuit://127.0.0.1:1/1/Q0000000000000001']);
  t.equal(bad.code, 1);
  t.match(bad.stderr, /join/);
});

t.test('mesh: --join-timeout makes an unreachable join fatal', async (t) => {
  const t0 = Date.now();
  await t.rejects(server(['-j', 'circuit://127.0.0.1:9/1/Q0000000000000001', '--join-timeout', '1500']), /exited with 1/);
  t.ok(Date.now() - t0 < 10_000);
});

t.test('mesh: client discovery on loopback', async (t) => {
  const group = `239.255.${(process.pid >> 8) & 255}.${process.pid & 255}:${20000 + (process.pid % 20000)}`;
  const a = await server(['--discover', group]);
  const b = await server(['--discover', group]);
  await eventually(async () => (await ls(a)).length === 2 && (await ls(b)).length === 2, 8000);
  t.pass('two servers found each other by multicast on loopback');
  const r = await cli(null, ['ls', '/', '--discover', `${group}@127.0.0.1`]);
  t.equal(r.code, 0, r.stderr);
  t.same(r.stdout.trim().split('\n').sort(), ids([a, b]));
  const none = await cli(null, ['ls', '/', '--discover', '239.255.254.253:9@127.0.0.1']);
  t.equal(none.code, 1);
  t.match(none.stderr, /unresponsive/);
});
