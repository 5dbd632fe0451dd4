/**
 * Routing in-process: two daemons with meshes in this process, a raw session to the middle one
 * to play a caller that vanishes, and the pool's behaviour when a member leaves.
 */
import t from 'tap';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { startDaemon, type Daemon } from '../../src/node/daemon';
import { startMesh, type Mesh } from '../../src/node/mesh';
import { connect, type RemoteClient } from '../../src/client/remote';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'circuit-routing-'));
const closers: Array<() => Promise<void>> = [];
t.teardown(async () => {
  for (const c of closers.reverse()) await c().catch(() => {});
  fs.rmSync(dir, { recursive: true, force: true });
});

async function node(join?: string): Promise<{ d: Daemon; mesh: Mesh }> {
  const d = await startDaemon({ varDir: fs.mkdtempSync(path.join(dir, 'v-')), stderr: () => {} });
  const mesh = await startMesh(d.server, { dial: (url) => connect(url, { via: 'peer', timeoutMs: 3000 }), key: null, join: join ? [join] : undefined, log: () => {} });
  closers.push(async () => {
    await mesh.close();
    await d.close();
  });
  return { d, mesh };
}

async function until(fn: () => boolean, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!fn()) {
    if (Date.now() > end) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 20));
  }
}

t.test('routing: through a middle server', async (t) => {
  const home = await node();
  const mid = await node(home.d.url);
  await until(() => mid.d.server.view.members().length === 2 && home.d.server.view.members().length === 2);
  const hid = home.d.server.id;
  const client: RemoteClient = await connect(mid.d.url);
  t.teardown(() => client.disconnect());

  t.test('routing: members is the mesh view', async (t) => {
    const ms = await client.members('/' + hid);
    t.same(ms.map((m) => m.id).sort(), [hid, mid.d.server.id].sort());
    t.ok(ms.every((m) => m.state === 'alive' && m.url.startsWith('circuit://')));
  });

  t.test('routing: a message whose caller vanished goes back to its home, first', async (t) => {
    const ch = `/${hid}/c`;
    await client.make(ch, 'chan', { cap: 4 });
    await client.send(ch, Buffer.from('one'));
    await client.send(ch, Buffer.from('two'));
    const raw = await connect(mid.d.url);
    const [, msg] = (await raw.session.call('recv', [ch])) as [number, Buffer];
    t.equal(Buffer.from(msg).toString(), 'one');
    raw.session.destroy(); // never acknowledged
    for (let i = 0; i < 100; i++) {
      if ((await client.log('/' + hid)).toString().includes('"op":"unrecv"')) break;
      await new Promise((r) => setTimeout(r, 20));
    }
    t.equal((await client.recv(ch)).toString(), 'one', 'the unacknowledged message is first again');
    t.equal((await client.recv(ch)).toString(), 'two');
  });

  t.test('routing: a plain recv acknowledges with a one-way note: the message is not given back when its receiver leaves', async (t) => {
    for (const [where, url] of [['at its home', home.d.url], ['through the middle', mid.d.url]] as const) {
      const ch = `/${hid}/acked-${where.split(' ').pop()}`;
      await client.make(ch, 'chan', { cap: 4 });
      await client.send(ch, Buffer.from('one'));
      await client.send(ch, Buffer.from('two'));
      const r = await connect(url);
      t.equal((await r.recv(ch)).toString(), 'one', where);
      t.equal((await r.tryrecv(ch)).toString(), 'two', where);
      await r.disconnect(); // right after the notes: they go first on the same connection
      await new Promise((res) => setTimeout(res, 300)); // a give-back on close takes milliseconds
      await t.rejects(client.tryrecv(ch), { code: 'EAGAIN' }, `${where}: neither message came back`);
      const stat = (await client.peek(ch)) as { NumRecv: number };
      t.equal(stat.NumRecv, 2, `${where}: two receives, no give-back`);
      const log = (await client.log('/' + hid)).toString();
      t.notOk(log.split('\n').some((l) => l.includes('"op":"unrecv"') && l.includes(ch)), `${where}: no unrecv logged`);
    }
  });

  t.test('routing: a routed tryrecv whose caller vanished gives its message back too', async (t) => {
    const ch = `/${hid}/tc`;
    await client.make(ch, 'chan', { cap: 4 });
    await t.rejects(client.tryrecv(ch), { code: 'EAGAIN' }, 'EAGAIN on an empty channel');
    await client.send(ch, Buffer.from('one'));
    await client.send(ch, Buffer.from('two'));
    const raw = await connect(mid.d.url);
    const [, msg] = (await raw.session.call('tryrecvUnacked', [ch, 1])) as [number, Buffer];
    t.equal(Buffer.from(msg).toString(), 'one');
    raw.session.destroy(); // never acknowledged
    let back = false;
    for (let i = 0; i < 100 && !back; i++) {
      back = (await client.log('/' + hid)).toString().split('\n').filter((l) => l.includes('"op":"unrecv"') && l.includes('/tc')).length > 0;
      if (!back) await new Promise((r) => setTimeout(r, 20));
    }
    t.ok(back, 'the home took it back');
    t.equal((await client.tryrecv(ch)).toString(), 'one', 'the unacknowledged message is first again');
    t.equal((await client.tryrecv(ch)).toString(), 'two');
    await t.rejects(client.tryrecv(ch), { code: 'EAGAIN' });
  });

  t.test('routing: an output reader that vanished gives its bytes back', async (t) => {
    const p = `/${hid}/p`;
    await client.make(p, 'proc', { Env: null, Dir: '', Path: '/bin/sh', Args: ['-c', 'printf abcdef'], Scrub: false });
    const raw = await connect(mid.d.url);
    const h = await raw.session.call('openOutput', [p, 'stdout']);
    let got = Buffer.alloc(0);
    while (got.length < 6) got = Buffer.concat([got, (await raw.session.call('read', [h, 3])) as Buffer]);
    t.equal(got.toString(), 'abcdef');
    raw.session.destroy(); // the last read's bytes were never confirmed by a next read
    let r: Awaited<ReturnType<RemoteClient['openOutput']>> | undefined;
    for (let i = 0; i < 100 && !r; i++) {
      r = await client.openOutput(p, 'stdout').catch(() => undefined);
      if (!r) await new Promise((res) => setTimeout(res, 20));
    }
    t.ok(r, 'the stream is free again');
    const again = await r!.read(100);
    t.equal(again?.toString(), 'def', 'the bytes in flight came back');
    await r!.release();
  });

  t.test('routing: a call in flight fails at once when the member leaves', async (t) => {
    const extra = await node(home.d.url);
    const xid = extra.d.server.id;
    await until(() => mid.d.server.view.members().some((m) => m.id === xid));
    await client.make(`/${xid}/q`, 'chan', { cap: 0 });
    const pending = client.recv(`/${xid}/q`);
    await new Promise((r) => setTimeout(r, 200));
    const t0 = Date.now();
    const failed = t.rejects(pending, { code: 'EHOSTDOWN', message: /left the cluster/ });
    await extra.mesh.close(); // announces its leave; its TCP listener is still up
    await failed;
    t.ok(Date.now() - t0 < 3000);
    await t.rejects(client.peek(`/${xid}/q`), { code: 'EHOSTDOWN', message: /not in this server's view/ });
    t.equal(mid.mesh.pool.size, 1, 'its connection was dropped');
  });

  t.test('routing: an unknown id fails with EHOSTDOWN', async (t) => {
    await t.rejects(client.list('/X0000000000000000'), { code: 'EHOSTDOWN' });
  });
});
