/**
 * The mesh across real hosts: five daemons in network namespaces on a bridge, found by multicast
 * discovery, with a cluster key. kill -9, SIGSTOP/SIGCONT and a cut link; the join visibility
 * and detection times are printed as test comments (docs/mesh.md quotes them).
 */
import t from 'tap';
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Lab, netnsAvailable, type NsDaemon } from '../helpers/netns';
import { MAIN } from '../helpers/daemon';
import { generateKey } from '../../src/cluster/keys';

if (!netnsAvailable()) {
  t.plan(0, 'needs root, ip netns and iptables');
} else {
  run();
}

async function eventually<T>(fn: () => Promise<T> | T, ms: number, every = 100): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v;
    } catch {
      // retry
    }
    if (Date.now() > end) throw new Error(`not true within ${ms} ms`);
    await new Promise((r) => setTimeout(r, every));
  }
}

function run(): void {
  const lab = new Lab(5);
  t.teardown(() => lab.destroy());
  const keyFile = path.join(lab.dir, 'key');
  fs.writeFileSync(keyFile, generateKey() + '\n', { mode: 0o600 });
  const group = `239.77.${Math.floor(Math.random() * 250)}.${1 + Math.floor(Math.random() * 250)}:${7000 + Math.floor(Math.random() * 2000)}`;
  const env = { CIRCUIT_HMAC: keyFile };
  let ds: NsDaemon[] = [];

  const view = async (d: NsDaemon) => {
    const r = await lab.cli(d.host, ['ls', '/', '-d', d.url], env);
    if (r.code !== 0) throw new Error(r.stderr);
    return r.stdout.trim().split('\n').filter(Boolean).sort();
  };
  const ids = (xs: NsDaemon[]) => xs.map((x) => '/' + x.id).sort();
  const same = (a: string[], b: string[]) => JSON.stringify(a) === JSON.stringify(b);

  /** A background `recv` on a subscription, resolving with its output and exit time. */
  const recvLater = (d: NsDaemon, p: string) => {
    const proc = spawn('ip', ['netns', 'exec', d.host.ns, process.execPath, MAIN, 'recv', p, '-d', d.url], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, CIRCUIT: '', CIRCUIT_DISCOVER: '', ...env },
    });
    let out = '';
    proc.stdout.on('data', (c) => (out += c));
    proc.stderr.on('data', (c) => (out += c));
    return new Promise<{ out: string; at: number }>((res) => proc.on('close', () => res({ out: out.trim(), at: Date.now() })));
  };

  t.test('netns: five daemons find each other by multicast discovery', async (t) => {
    const t0 = Date.now();
    ds = await Promise.all(lab.hosts.map((h) => lab.start(h, ['-a', `${h.addr}:0`, '--discover', group], env)));
    const started = Date.now();
    for (const d of ds) await eventually(async () => same(await view(d), ids(ds)), 20_000);
    t.comment(`join visibility: five servers all list all five ${Date.now() - started} ms after the last printed its URL (${Date.now() - t0} ms after spawning)`);
    t.pass('one view of five');
    t.match(ds[0].stderr(), /Discovering servers on/);
  });

  t.test('netns: kill -9 gives @leave on the others within 2 s', async (t) => {
    const victim = ds[4];
    const others = ds.slice(0, 4);
    for (const d of others) t.equal((await lab.cli(d.host, ['mk@leave', `/${d.id}/leave`, '-d', d.url], env)).code, 0);
    const waits = others.map((d) => recvLater(d, `/${d.id}/leave`));
    await new Promise((r) => setTimeout(r, 1000)); // the recv CLIs are connected and waiting
    const killed = Date.now();
    victim.proc.kill('SIGKILL');
    const got = await Promise.all(waits);
    const times = got.map((g) => g.at - killed);
    for (const g of got) t.equal(g.out, '/' + victim.id);
    t.comment(`detection after kill -9 (@leave recv returned): ${times.join(', ')} ms; max ${Math.max(...times)} ms`);
    t.ok(Math.max(...times) < 2000, 'all within 2 s');
    const r = await lab.cli(ds[0].host, ['peek', `/${victim.id}`, '-d', ds[0].url], env);
    t.equal(r.code, 1);
    t.match(r.stderr, /not in this server's view/);
    ds = others;
  });

  t.test('netns: SIGSTOP 10 s leaves, SIGCONT rejoins with @join', async (t) => {
    const sleeper = ds[3];
    const watch = ds[0];
    t.equal((await lab.cli(watch.host, ['mk@join', `/${watch.id}/join`, '-d', watch.url], env)).code, 0);
    for (let i = 0; i < ds.length; i++) await lab.cli(watch.host, ['recv', `/${watch.id}/join`, '-d', watch.url], env); // the initial view
    const left = recvLater(watch, `/${watch.id}/leave`);
    await new Promise((r) => setTimeout(r, 500));
    const stopped = Date.now();
    process.kill(sleeper.proc.pid!, 'SIGSTOP');
    const l = await left;
    t.equal(l.out, '/' + sleeper.id, 'it leaves');
    t.comment(`SIGSTOP detected in ${l.at - stopped} ms`);
    const joined = recvLater(watch, `/${watch.id}/join`);
    await new Promise((r) => setTimeout(r, Math.max(0, stopped + 10_000 - Date.now())));
    const cont = Date.now();
    process.kill(sleeper.proc.pid!, 'SIGCONT');
    const j = await joined;
    t.equal(j.out, '/' + sleeper.id, 'it rejoins');
    t.comment(`after SIGCONT, @join in ${j.at - cont} ms`);
    for (const d of ds) await eventually(async () => same(await view(d), ids(ds)), 15_000);
    t.pass('one view again');
  });

  t.test('netns: a cut link partitions, ls answers at once, calls fail by their deadline, healing merges', async (t) => {
    const cut = ds[2];
    const rest = ds.filter((d) => d !== cut);
    // A call blocked across the cut, from rest[0] to a channel on the cut-off host.
    t.equal((await lab.cli(rest[0].host, ['mkchan', `/${cut.id}/q`, '0', '-d', rest[0].url], env)).code, 0);
    const blocked = lab.cli(rest[0].host, ['recv', `/${cut.id}/q`, '-d', rest[0].url], env);
    await new Promise((r) => setTimeout(r, 1000));
    const t0 = Date.now();
    lab.link(cut.host, false);
    const b = await blocked;
    t.equal(b.code, 1, 'the blocked call fails');
    t.comment(`blocked call across the cut failed ${Date.now() - t0} ms after the cut: ${b.stderr.trim()}`);
    t.ok(Date.now() - t0 < 6000, 'within the session deadline');
    await eventually(async () => same(await view(rest[0]), ids(rest)), 10_000);
    await eventually(async () => same(await view(cut), ids([cut])), 10_000);
    t.comment(`both sides see the other leave ${Date.now() - t0} ms after the cut`);
    const lsTimes: number[] = [];
    for (const d of [...rest, cut]) {
      const r = await lab.cli(d.host, ['ls', '/', '-d', d.url], env);
      t.equal(r.code, 0);
      lsTimes.push(r.ms);
    }
    t.comment(`ls / during the partition, whole CLI runs: ${lsTimes.join(', ')} ms`);
    const r = await lab.cli(rest[0].host, ['peek', `/${cut.id}/q`, '-d', rest[0].url], env);
    t.equal(r.code, 1, 'a call to the other side fails');
    t.ok(r.ms < 3000, `and at once (${r.ms} ms)`);
    const healed = Date.now();
    lab.link(cut.host, true);
    for (const d of ds) await eventually(async () => same(await view(d), ids(ds)), 45_000, 250);
    t.comment(`after healing, one view in ${Date.now() - healed} ms`);
    t.pass('one view again');
  });

  t.test('netns: a non-loopback bind without a key warns; a keyless server is not let in', async (t) => {
    const h = lab.hosts[4];
    const d = await lab.start(h, ['-a', `${h.addr}:0`, '--discover', group, '-j', ds[0].url], { CIRCUIT_HMAC: '' });
    t.match(d.stderr(), /warning: listening on .* without a key/);
    await new Promise((r) => setTimeout(r, 2000));
    t.same(await view(ds[0]), ids(ds), 'keyed servers ignore its datagrams');
    const r = await lab.cli(h, ['ls', '/', '-d', d.url], { CIRCUIT_HMAC: '' });
    t.equal(r.stdout.trim(), '/' + d.id, 'and it sees only itself');
    d.proc.kill('SIGKILL');
  });
}
