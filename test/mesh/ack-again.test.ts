/**
 * An acknowledgement whose confirmation was cut off is asked about again (issue 12). A receiver
 * dials A; the channel lives on C. The receiver's acknowledgement goes through A to C, which
 * forgets the message; C's answer never gets out (its TCP output is dropped) and A's connection
 * to C is declared dead. Before, A failed the acknowledgement: a receiver still there wrote
 * nothing (the message was gone at C: lost), and one that had left got nothing put back (lost
 * too). Now A asks C again by the message's id over a new connection once C can be reached:
 * the receiver still there is told it has the message, and the one that left gets it put back.
 */
import t, { type Test } from 'tap';
import { execFileSync } from 'node:child_process';
import { netnsAvailable } from '../helpers/netns';
import { cli, eventually, startServer, type Running } from '../helpers/daemon';
import { connect } from '../../src/client/remote';
import { ackSurely } from '../../src/cli/io';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Drops what a server sends on TCP over loopback (its port is the source of every answer it
 * gives) until the returned function, or the test's end, lifts the rule.
 */
function dropOutput(t: Test, server: Running): () => void {
  const port = Number(new URL(server.url.replace(/^circuit:/, 'http:')).port);
  const rule = ['-o', 'lo', '-p', 'tcp', '--sport', String(port), '-j', 'DROP'];
  execFileSync('iptables', ['-I', 'OUTPUT', ...rule]);
  let blocked = true;
  const unblock = () => {
    if (blocked) execFileSync('iptables', ['-D', 'OUTPUT', ...rule]);
    blocked = false;
  };
  t.teardown(unblock);
  return unblock;
}

t.test('a routed acknowledgement whose confirmation was cut is confirmed over a new connection', { skip: netnsAvailable() ? false : 'needs root with iptables (drops one port\'s output on loopback)' }, async (t) => {
  const a: Running = await startServer(['--no-mount']);
  const c: Running = await startServer(['--no-mount', '-j', a.url]);
  t.teardown(async () => {
    await a.stop();
    await c.stop();
  });
  await eventually(async () => (await cli(a.url, ['ls', '/'])).stdout.includes(c.id), 15_000);
  const ch = `/${c.id}/again/ch`;
  t.equal((await cli(c.url, ['mkchan', ch, '4'])).code, 0);
  for (const m of ['stays', 'leaves']) t.equal((await cli(c.url, ['send', ch], m)).code, 0);

  const stays = await connect(a.url);
  const leaves = await connect(a.url);
  t.teardown(() => stays.disconnect());
  const one = await stays.recvUnacked(ch);
  const two = await leaves.recvUnacked(ch);
  t.same([one.msg.toString(), two.msg.toString()], ['stays', 'leaves'], 'both taken through A');

  // Drop what C sends on TCP (its port is the source of every answer to A): membership's UDP
  // still flows, so C stays in the view, but A's connection to C goes silent and is declared
  // dead after 4 s. Both acknowledgements reach C, which forgets both messages.
  const unblock = dropOutput(t, c);
  let settled = '';
  const acked = one.ack().then(
    () => (settled = 'confirmed'),
    (e: Error) => (settled = `failed: ${e.message}`),
  );
  void leaves.session.call('ackRecv', [1]).catch(() => {});
  await sleep(500);
  leaves.session.destroy(); // this receiver leaves before it could hear anything
  await sleep(5500); // A's connection to C is declared dead meanwhile
  t.equal(settled, '', 'the acknowledgement waits while C cannot be reached');
  unblock();

  await acked;
  t.equal(settled, 'confirmed', 'the receiver still there is told it has its message');
  const home = await connect(c.url);
  t.teardown(() => home.disconnect());
  const back = await eventually(async () => (await home.tryrecv(ch)).toString(), 10_000).catch(() => '(the channel stayed empty)');
  t.equal(back, 'leaves', 'the message of the receiver that left is back at its home');
  const rest = await home.tryrecv(ch).then((m) => m.toString(), (e: NodeJS.ErrnoException) => e.code);
  t.equal(rest, 'EAGAIN', 'and nothing else: the confirmed one is not back too');
  t.match(a.stderr(), /left before its acknowledgement was confirmed: its message goes back/, "A's log says why it went back");
});

t.test("the CLI's recv asks again by dialling anew when its own connection to the home dies", { skip: netnsAvailable() ? false : 'needs root with iptables (drops one port\'s output on loopback)' }, async (t) => {
  const c: Running = await startServer(['--no-mount']);
  t.teardown(() => c.stop());
  const ch = `/${c.id}/again/direct`;
  t.equal((await cli(c.url, ['mkchan', ch, '4'])).code, 0);
  t.equal((await cli(c.url, ['send', ch], 'direct')).code, 0);
  const r = await connect(c.url);
  const got = await r.recvUnacked(ch);
  const unblock = dropOutput(t, c);
  // what `circuit recv` does with a message before it writes it out (src/cli/kinds/chan.ts)
  let settled = '';
  const acked = ackSurely(r, got, () => connect(c.url)).then(
    () => (settled = 'confirmed'),
    (e: Error) => (settled = `failed: ${e.message}`),
  );
  await sleep(6000); // the home forgot it; the connection is declared dead; dialling fails
  t.ok(r.session.isClosed, 'the connection that carried the acknowledgement is gone');
  t.equal(settled, '', 'the receiver keeps asking');
  unblock();
  await acked;
  t.equal(settled, 'confirmed', 'and is told it may write the message out');
  const home = await connect(c.url);
  t.teardown(() => home.disconnect());
  t.equal(await home.tryrecv(ch).then((m) => m.toString(), (e: NodeJS.ErrnoException) => e.code), 'EAGAIN', 'the message is not in its channel any more');
});
