/**
 * Idle pooled connections close (issue 12): a server that routed a call to another keeps the
 * connection only while it is used, then closes it after --idle-close ms; the next call dials again.
 */
import t from 'tap';
import { execFileSync } from 'node:child_process';
import { cli, eventually, startServer, type Running } from '../helpers/daemon';
import { connect } from '../../src/client/remote';

const started: Running[] = [];
t.teardown(() => Promise.all(started.filter((s) => s.proc.exitCode === null && s.proc.signalCode === null).map((s) => s.stop('SIGKILL'))));

/** Established TCP connections that process pid has open to port. */
function connsTo(pid: number, port: number): number {
  const out = execFileSync('ss', ['-Htnp', 'state', 'established', `( dport = :${port} )`]).toString();
  return out.split('\n').filter((l) => l.includes(`pid=${pid},`)).length;
}

/** Server a with --idle-close 700 ms, b joined to it, both in a's view; bPort is b's TCP port. */
async function pair() {
  const a = await startServer(['--no-mount', '--idle-close', '700']);
  started.push(a);
  const b = await startServer(['--no-mount', '-j', a.url]);
  started.push(b);
  await eventually(async () => (await cli(a.url, ['ls', '/'])).stdout.includes(b.id), 10_000);
  return { a, b, bPort: Number(new URL(b.url).port) };
}

t.test('pool: an unused connection to another server closes after --idle-close', async (t) => {
  const { a, b, bPort } = await pair();
  t.equal(connsTo(a.proc.pid!, bPort), 0, 'no connection before a routed call');
  const r = await cli(a.url, ['ls', `/${b.id}/`]);
  t.equal(r.code, 0, r.stderr);
  t.equal(connsTo(a.proc.pid!, bPort), 1, 'the routed call dialled b');
  // busy: a routed recv blocks on b's channel; the connection must stay while it waits
  t.equal((await cli(a.url, ['mkchan', `/${b.id}/ch`, '0'])).code, 0);
  await eventually(() => connsTo(a.proc.pid!, bPort) === 0, 5000);
  const waiting = cli(a.url, ['recv', `/${b.id}/ch`]);
  await eventually(() => connsTo(a.proc.pid!, bPort) === 1, 10_000); // the recv dialled b
  await new Promise((r) => setTimeout(r, 1500)); // twice --idle-close
  t.equal(connsTo(a.proc.pid!, bPort), 1, 'kept while a call through it waits');
  t.equal((await cli(b.url, ['send', `/${b.id}/ch`], 'x')).code, 0);
  t.equal((await waiting).stdout, 'x');
  await eventually(() => connsTo(a.proc.pid!, bPort) === 0, 5000);
  t.pass('closed once idle');
  const again = await cli(a.url, ['ls', `/${b.id}/`]);
  t.equal(again.code, 0, 'the next call dials again');
});

t.test('pool: a message received through a connection keeps it open until acknowledged', async (t) => {
  const { a, b, bPort } = await pair();
  const ch = `/${b.id}/held`;
  t.equal((await cli(b.url, ['mkchan', ch, '2'])).code, 0);
  t.equal((await cli(b.url, ['send', ch], 'm')).code, 0);
  const c = await connect(a.url);
  t.teardown(() => c.disconnect());
  const r = await c.recvUnacked(ch);
  t.equal(r.msg.toString(), 'm', 'received through a');
  await new Promise((res) => setTimeout(res, 1500)); // twice --idle-close
  t.equal(connsTo(a.proc.pid!, bPort), 1, 'the connection stays while the message is not acknowledged');
  await r.ack();
  t.pass('the acknowledgement went through');
  const home = await connect(b.url);
  t.teardown(() => home.disconnect());
  t.rejects(home.tryrecv(ch), /empty/, 'the message was delivered once: not given back to its home');
  await eventually(() => connsTo(a.proc.pid!, bPort) === 0, 5000);
  t.pass('closed once idle');
});

t.test('pool: --idle-close takes milliseconds, and says so', async (t) => {
  const r = await startServer(['--no-mount', '--idle-close', 'soon']).then(
    (s) => {
      started.push(s);
      return '';
    },
    (e: Error) => e.message,
  );
  t.match(r, /circuit: --idle-close: not a number of milliseconds: "soon"/);
});
