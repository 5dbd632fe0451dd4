/**
 * A reader that goes away in the middle of a routed call leaves nothing held (issue 12): the
 * client dials A, the element lives on C.
 *
 * - An output lease granted for an `openOutput` whose caller gave up before the answer came
 *   (here: the request held up on its way to C, the `circuit stdout` killed meanwhile) is given
 *   back, so the next reader is not refused with `stdout already has a reader` for as long as
 *   A's pooled connection to C lives (the chaos suite once saw that for a whole run).
 * - A receiver whose connection to A ends while its acknowledgement is on its way to C never
 *   wrote the message (a receiver writes it out only once the acknowledgement is confirmed), so
 *   the message goes back to C instead of being dropped there.
 */
import t from 'tap';
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { Lab, netnsAvailable, type Host } from '../helpers/netns';
import { MAIN, cli, eventually, startServer, type Running } from '../helpers/daemon';
import { connect } from '../../src/client/remote';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The CLI in a host's namespace; input, when given, goes to its stdin. */
function nsCli(h: Host, args: string[], input = ''): { proc: ChildProcess; done: Promise<{ code: number | null; out: string; err: string }> } {
  const proc = spawn('ip', ['netns', 'exec', h.ns, process.execPath, MAIN, ...args], { stdio: ['pipe', 'pipe', 'pipe'], env: { PATH: process.env.PATH ?? '/usr/bin:/bin' } });
  let out = '';
  let err = '';
  proc.stdout!.on('data', (c) => (out += c));
  proc.stderr!.on('data', (c) => (err += c));
  proc.stdin!.on('error', () => {});
  proc.stdin!.end(input);
  return { proc, done: new Promise((r) => proc.on('close', (code) => r({ code, out, err }))) };
}

/** Bytes this host has sent on TCP connections to addr (from port) and not had acknowledged (ss Send-Q). */
function sendQ(h: Host, addr: string, port: number, side: 'src' | 'dst' = 'dst'): number {
  const filter = side === 'dst' ? ['dst', `${addr}:${port}`] : ['dst', addr, 'sport', '=', `:${port}`];
  const out = execFileSync('ip', ['netns', 'exec', h.ns, 'ss', '-tnH', ...filter]).toString();
  return out.split('\n').filter(Boolean).reduce((n, l) => n + Number(l.trim().split(/\s+/)[2] ?? 0), 0);
}

t.test('a routed openOutput given up on before its answer leaves no lease behind', { skip: netnsAvailable() ? false : 'needs root with ip and iptables (network namespaces)' }, async (t) => {
  const lab = new Lab(2);
  t.teardown(() => lab.destroy());
  const [h1, h2] = [lab.hosts[0]!, lab.hosts[1]!];
  const a = await lab.start(h1, ['-a', `${h1.addr}:0`]);
  const c = await lab.start(h2, ['-a', `${h2.addr}:0`, '-j', a.url]);
  const viaA = (args: string[], input?: string) => nsCli(h1, [...args, '-d', a.url], input);
  await eventually(async () => (await viaA(['ls', '/']).done).out.includes(c.id), 15_000);
  const p = `/${c.id}/gone/p`;
  const want = execFileSync('seq', ['1', '1000']).toString();
  t.equal((await viaA(['mkproc', p], JSON.stringify({ Path: 'seq', Args: ['1', '1000'] })).done).code, 0, 'a process on C');
  t.equal((await viaA(['peek', p]).done).code, 0, 'A has a pooled connection to C');

  // Hold up TCP out of C (membership's UDP still flows, so nobody is declared dead): a
  // `circuit stdout` through A gets its lease granted on C, but the answer waits on C's side
  // while the reader is killed and A gives up the routed call; it reaches A after that. The
  // hold is shorter than the 4 s after which a silent connection is declared dead.
  const port = Number(new URL(c.url.replace(/^circuit:/, 'http:')).port);
  const rule = ['-p', 'tcp', '--sport', String(port), '-j', 'DROP'];
  execFileSync('ip', ['netns', 'exec', h2.ns, 'iptables', '-I', 'OUTPUT', ...rule]);
  let blocked = true;
  const unblock = () => {
    if (blocked) execFileSync('ip', ['netns', 'exec', h2.ns, 'iptables', '-D', 'OUTPUT', ...rule]);
    blocked = false;
  };
  t.teardown(unblock);
  const base = sendQ(h2, h1.addr, port, 'src');
  const reader = viaA(['stdout', p]);
  // the grant is on its way once C's unacknowledged bytes to A grow past a ping's few
  let queued = false;
  for (let i = 0; i < 60 && !queued; i++) {
    await sleep(50);
    queued = sendQ(h2, h1.addr, port, 'src') > base + 12;
  }
  reader.proc.kill('SIGKILL');
  await reader.done;
  await sleep(300); // A sees its client go and gives up the routed call
  unblock();
  t.ok(queued, 'the lease was granted on C, its answer held up');

  // The next reader, straight at C, gets every byte: the lease granted for the killed one went.
  const started = Date.now();
  const got = await eventually(async () => {
    const r = await nsCli(h2, ['stdout', p, '-d', c.url]).done;
    if (r.code !== 0 && !/already has a reader/.test(r.err)) throw new Error(r.err);
    return r.code === 0 ? r.out : undefined;
  }, 15_000).catch((e: Error) => `(no reader got in: ${e.message})`);
  t.equal(got, want, `the next reader read the whole stream (after ${Date.now() - started} ms)`);
});

t.test('a receiver gone while its acknowledgement crossed the middle server does not lose the message', async (t) => {
  const a: Running = await startServer(['--no-mount']);
  const c: Running = await startServer(['--no-mount', '-j', a.url]);
  t.teardown(async () => {
    await a.stop();
    await c.stop();
  });
  await eventually(async () => (await cli(a.url, ['ls', '/'])).stdout.includes(c.id), 15_000);
  const ch = `/${c.id}/gone/ch`;
  t.equal((await cli(c.url, ['mkchan', ch, '2'])).code, 0);
  t.equal((await cli(c.url, ['send', ch], 'kept')).code, 0);
  await eventually(async () => (await cli(a.url, ['peek', ch])).code === 0, 10_000);

  // A receiver through A has the message and sends its acknowledgement; C is stopped, so A's
  // forwarded acknowledgement waits there; the receiver is gone (as a `circuit recv` killed
  // right after writing its ackRecv) before C answers, and A sees that first.
  const r = await connect(a.url);
  const got = await r.recvUnacked(ch);
  t.equal(got.msg.toString(), 'kept', 'received through A');
  c.proc.kill('SIGSTOP');
  try {
    void r.session.call('ackRecv', [1]).catch(() => {});
    await sleep(200); // A has forwarded it
    r.session.destroy();
    await sleep(300); // A has seen the connection end
  } finally {
    c.proc.kill('SIGCONT');
  }

  const home = await connect(c.url);
  t.teardown(() => home.disconnect());
  const again = await eventually(async () => (await home.tryrecv(ch)).toString(), 10_000).catch(() => '(the channel stayed empty)');
  t.equal(again, 'kept', 'the message is back at its home');
});
