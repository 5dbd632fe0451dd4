/**
 * Deploying as the docs say, across real hosts (network namespaces on a private bridge):
 * the seed's recipe `circuit start -if eth0 -discover GROUP` on three hosts forms one cluster
 * whose URLs name each host's eth0 address; without multicast, `-j HOST:PORT` (no pid, no id)
 * and `-j NAME:PORT` with a name that has several addresses (one of them dead) join; and
 * `circuit join /Xid HOST:PORT` merges two clusters.
 */
import t from 'tap';
import { Lab, netnsAvailable, type NsDaemon } from '../helpers/netns';

if (!netnsAvailable()) {
  t.plan(0, 'needs root, ip netns and iptables');
} else {
  run();
}

async function eventually(fn: () => Promise<boolean>, ms: number): Promise<void> {
  const end = Date.now() + ms;
  for (;;) {
    if (await fn().catch(() => false)) return;
    if (Date.now() > end) throw new Error(`not true within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 150));
  }
}

function run(): void {
  const lab = new Lab(6);
  t.teardown(() => lab.destroy());
  const env = { CIRCUIT_HMAC: '' };
  const view = async (d: NsDaemon) => {
    const r = await lab.cli(d.host, ['ls', '/', '-d', d.url], env);
    if (r.code !== 0) throw new Error(r.stderr);
    return r.stdout.trim().split('\n').filter(Boolean).sort().join(' ');
  };
  const ids = (xs: NsDaemon[]) => xs.map((x) => '/' + x.id).sort().join(' ');
  const port = 20000 + Math.floor(Math.random() * 20000);
  const [h1, h2, h3, h4, h5, h6] = lab.hosts;
  let seeds: NsDaemon[] = [];
  let pair: NsDaemon[] = [];

  t.test('the seed recipe: -if eth0 -discover GROUP on three hosts is one cluster', async (t) => {
    const group = `239.78.${Math.floor(Math.random() * 250)}.${1 + Math.floor(Math.random() * 250)}:${7000 + Math.floor(Math.random() * 2000)}`;
    seeds = await Promise.all([h1, h2, h3].map((h) => lab.start(h, ['-if', 'eth0', '-discover', group], env)));
    for (const d of seeds) t.match(d.url, new RegExp(`^circuit://${d.host.addr.replace(/\./g, '\\.')}:\\d+/`), `URL names eth0's address (${d.url})`);
    const t0 = Date.now();
    for (const d of seeds) await eventually(async () => (await view(d)) === ids(seeds), 15_000);
    t.comment(`three hosts list all three ${Date.now() - t0} ms after the last printed its URL`);
    t.pass('one cluster of three');
  });

  t.test('--if with -a takes -a\'s port; an unknown interface is a clear error', async (t) => {
    const bad = await lab.cli(h6, ['start', '--no-mount', '--if', 'eth9'], env);
    t.equal(bad.code, 1);
    t.match(bad.stderr, /circuit: interface "eth9" not found \(this host has: .*eth0.*\)/);
    const d = await lab.start(h6, ['--if', 'eth0', '-a', `:${port}`], env);
    t.match(d.url, `circuit://${h6.addr}:${port}/`);
    d.proc.kill('SIGTERM');
    await new Promise((r) => d.proc.once('close', r));
  });

  t.test('-j HOST:PORT joins a server known only by its address', async (t) => {
    const target = await lab.start(h4, ['-a', `${h4.addr}:${port}`], env);
    const joiner = await lab.start(h5, ['-a', `${h5.addr}:${port}`, '-j', `${h4.addr}:${port}`], env);
    pair = [target, joiner];
    await eventually(async () => (await view(target)) === ids(pair) && (await view(joiner)) === ids(pair), 10_000);
    t.pass('one cluster of two');
  });

  t.test('-j NAME:PORT tries every address of the name; -j repeats', async (t) => {
    const dead = `${lab.subnet}.250`; // on the bridge's subnet, answered by nobody
    lab.hostsFile(h6, [`${dead} seeds.test`, `${h4.addr} seeds.test`]);
    const d = await lab.start(h6, ['-a', `${h6.addr}:${port}`, '-j', `seeds.test:${port}`, '-j', `${dead}:${port}`], env);
    pair.push(d);
    await eventually(async () => (await view(d)) === ids(pair), 10_000);
    t.pass('joined through the live address of the name');
    t.match(d.stderr(), /Joined the cluster of seeds\.test:/);
  });

  t.test('circuit join /Xid HOST:PORT merges two clusters', async (t) => {
    const r = await lab.cli(h1, ['join', `/${seeds[0].id}`, `${h4.addr}:${port}`, '-d', seeds[0].url], env);
    t.equal(r.code, 0, r.stderr);
    const all = [...seeds, ...pair];
    for (const d of all) await eventually(async () => (await view(d)) === ids(all), 15_000);
    t.pass('one cluster of six');
    const bad = await lab.cli(h1, ['join', `/${seeds[0].id}`, 'no.such.name.invalid:1', '-d', seeds[0].url], env);
    t.equal(bad.code, 1);
    t.match(bad.stderr, /circuit: panic joining: cannot join no\.such\.name\.invalid:1: no answer after 3 attempts \(cannot resolve/);
  });
}
