import t from 'tap';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Server } from '../../src/node/server';

function server(opts: ConstructorParameters<typeof Server>[0] = {}): Server {
  return new Server({ stderr: () => {}, ...opts });
}

t.test('server: peek of an empty anchor is null and creates nothing', async (t) => {
  const s = server();
  t.teardown(() => s.shutdown());
  t.equal(await s.peek(`/${s.id}/nothing/here`), null);
  t.same(await s.list(`/${s.id}`), [], 'no anchor was left behind');
  t.equal(await s.peek('/'), null, 'the root peeks null');
});

t.test('server: make on the root fails', async (t) => {
  const s = server();
  t.teardown(() => s.shutdown());
  await t.rejects(s.make('/', 'chan', { cap: 1 }), { message: 'cannot create elements outside of servers' });
  await t.rejects(s.make('//', '@join', null), { message: 'cannot create elements outside of servers' });
});

t.test('server: make on the server anchor fails: it already has an element', async (t) => {
  const s = server();
  t.teardown(() => s.shutdown());
  await t.rejects(s.make(`/${s.id}`, 'chan', { cap: 1 }), { message: 'anchor already has an element' });
  t.equal((await s.peek(`/${s.id}`) as { Id: string }).Id, s.id, 'the server element is still there');
});

t.test('server: scrub of the root, the server anchor or an empty anchor is a no-op', async (t) => {
  const s = server();
  t.teardown(() => s.shutdown());
  await s.scrub('/');
  await s.scrub(`/${s.id}`);
  await s.scrub(`/${s.id}/empty/anchor`);
  t.ok(await s.peek(`/${s.id}`), 'the server element survives');
  t.same(await s.list(`/${s.id}`), [], 'scrub of an empty path created nothing');
});

t.test('server: scrub detaches, the anchor goes and takes a new element at once', async (t) => {
  const s = server();
  t.teardown(() => s.shutdown());
  const p = `/${s.id}/a/b`;
  await s.make(p, 'chan', { cap: 1 });
  t.same(await s.list(`/${s.id}`), [{ name: 'a', path: `/${s.id}/a`, kind: null }]);
  await s.scrub(p);
  t.equal(await s.peek(p), null);
  t.same(await s.list(`/${s.id}`), [], 'empty anchors are removed, cascading up');
  await s.make(p, 'chan', { cap: 2 });
  t.equal((await s.peek(p) as { Cap: number }).Cap, 2);
});

t.test('server: list is sorted by name with absolute paths and kinds', async (t) => {
  const s = server();
  t.teardown(() => s.shutdown());
  await s.make(`/${s.id}/b`, 'chan', { cap: 0 });
  await s.make(`/${s.id}/a/x`, '@join', null);
  await s.make(`/${s.id}/C`, '@leave', null);
  t.same(await s.list(`/${s.id}`), [
    { name: 'C', path: `/${s.id}/C`, kind: '@leave' },
    { name: 'a', path: `/${s.id}/a`, kind: null },
    { name: 'b', path: `/${s.id}/b`, kind: 'chan' },
  ]);
  t.same(await s.list('/'), [{ name: s.id, path: `/${s.id}`, kind: 'server' }], 'the root lists the servers');
});

t.test('server: operations on the wrong kind or nothing fail clearly', async (t) => {
  const s = server();
  t.teardown(() => s.shutdown());
  await s.make(`/${s.id}/c`, 'chan', { cap: 0 });
  await t.rejects(s.wait(`/${s.id}/c`), { message: 'anchor is not a process or a docker container' });
  await t.rejects(s.send(`/${s.id}/none`, Buffer.from('x')), { code: 'ENOENT' });
  await t.rejects(s.make(`/${s.id}/neg`, 'chan', { cap: -1 }), { code: 'EINVAL' });
  t.equal(await s.peek(`/${s.id}/neg`), null, 'a failed make leaves nothing');
  t.same(await s.list(`/${s.id}`), [{ name: 'c', path: `/${s.id}/c`, kind: 'chan' }]);
});

t.test('server: the operations log gets one JSON line per operation', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'circuit-oplog-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const file = path.join(dir, 'ops.log');
  const lines: string[] = [];
  const s = new Server({ logFile: file, stderr: (l) => lines.push(l) });
  t.teardown(() => s.shutdown());
  const origin = { via: 'cli' as const, peer: '127.0.0.1:5555' };
  const p = `/${s.id}/ch`;
  await s.make(p, 'chan', { cap: 1 }, { origin });
  await t.rejects(s.make(p, 'chan', { cap: 1 }, { origin }));
  await s.send(p, Buffer.from('hello'), { origin });
  await s.recv(p, { origin });
  await s.close(p, { origin });
  await s.scrub(p, { origin });
  // read through the server element's log (it flushes the lines of this tick first)
  const recs = (await s.log('/' + s.id)).toString().trim().split('\n').map((l) => JSON.parse(l));
  t.same(recs.map((r) => r.op), ['make', 'make', 'send', 'recv', 'close', 'scrub']);
  t.same(recs.map((r) => r.seq), [1, 2, 3, 4, 5, 6], 'sequence numbers in execution order');
  for (const r of recs) {
    t.match(r.time, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
    t.same(r.origin, origin);
    t.equal(r.path, p);
  }
  t.same(recs.map((r) => r.ok), [true, false, true, true, true, true]);
  t.same(recs[1].error, { code: 'EBUSY', message: 'anchor already has an element' });
  t.same(recs[3].result, { bytes: 5 });
  t.match(lines.join('\n'), new RegExp(`^\\d{4}/\\d\\d/\\d\\d \\d\\d:\\d\\d:\\d\\d Making chan at "${p}", using 1$`, 'm'));
  t.match(lines.join('\n'), new RegExp(`^\\d{4}/\\d\\d/\\d\\d \\d\\d:\\d\\d:\\d\\d Scrubbing "${p}"$`, 'm'));
});

t.test('server: a send over maxMessage fails EMSGSIZE and enqueues nothing', async (t) => {
  const s = server({ maxMessage: 100 });
  t.teardown(() => s.shutdown());
  const p = `/${s.id}/big`;
  await s.make(p, 'chan', { cap: 1 });
  await s.send(p, Buffer.alloc(100, 1));
  await s.recv(p);
  await t.rejects(s.send(p, Buffer.alloc(101, 1)), { code: 'EMSGSIZE' });
  t.same(await s.peek(p), { Cap: 1, Closed: false, Aborted: false, NumSend: 1, NumRecv: 1 });
  const ac = new AbortController();
  const r = s.recv(p, { signal: ac.signal });
  setTimeout(() => ac.abort(), 100);
  await t.rejects(r, { code: 'EINTR' }, 'nothing to receive');
});

t.test('server: the default maximum message is 16 MiB', async (t) => {
  const s = server();
  t.teardown(() => s.shutdown());
  t.equal(s.maxMessage, 16 << 20);
});

t.test('server: peek of the server element', async (t) => {
  const s = server({ url: 'circuit://127.0.0.1:1/2/Q0000000000000003' });
  t.teardown(() => s.shutdown());
  const st = (await s.peek(`/${s.id}`)) as Record<string, unknown>;
  t.equal(st.Addr, 'circuit://127.0.0.1:1/2/Q0000000000000003');
  t.match(st.Joined, /^\d{4}-\d\d-\d\dT/);
  t.match(s.id, /^X[0-9a-f]{16}$/);
});
