/**
 * The mesh through the mount: a daemon with a mount joined to one without; shell commands on the
 * mount act on the other server's elements (routed by the mounting daemon), and the answers and
 * streams come back whole.
 */
import t from 'tap';
import { bash as sh, mountedPair } from '../helpers/mesh-mount';
import * as fs from 'node:fs';
import { createHash } from 'node:crypto';
import { eventually } from '../helpers/daemon';

t.test('mesh through the mount: another server\'s channel, process and listing', async (t) => {
  const { M, a, b } = await mountedPair(t, 'circuit-mesh-mnt-');
  const env = { M, A: a.id, B: b.id };
  await eventually(async () => (await sh('ls "$M"', env)).out.split('\n').filter(Boolean).sort().join(' ') === [a.id, b.id].sort().join(' '), 5000);
  t.pass('ls of the mount lists both servers');

  // A channel on B, made, fed and drained through A's mount.
  let r = await sh('mkdir -p "$M/$B/far/ch/chan" && echo 2 > "$M/$B/far/ch/chan/cap" && echo hello > "$M/$B/far/ch/chan/send" && cat "$M/$B/far/ch/chan/recv"', env);
  t.equal(r.out, 'hello\n', 'send and recv on the other server');
  t.equal(r.code, 0, r.err);
  r = await sh('cat "$M/$B/far/ch/chan/peek"', env);
  t.match(JSON.parse(r.out), { Cap: 2, NumSend: 1, NumRecv: 1 });
  r = await sh('ls "$M/$B/far/ch"', env);
  t.equal(r.out, 'chan\n', 'listing an anchor of the other server');

  // An interrupted recv on the other server takes nothing.
  r = await sh('timeout 1 cat "$M/$B/far/ch/chan/recv"; echo $?', env);
  t.equal(r.out.trim(), '124', 'interrupted within its timeout');
  r = await sh('echo later > "$M/$B/far/ch/chan/send" && cat "$M/$B/far/ch/chan/recv"', env);
  t.equal(r.out, 'later\n', 'the next message reaches the next reader whole');
  // tryrecv on the other server: the message, acknowledged at its home before the read answers
  // (src/fs/files/stream.ts tryrecvAcked), then EAGAIN: it was not left at home too.
  r = await sh('echo now > "$M/$B/far/ch/chan/send" && cat "$M/$B/far/ch/chan/tryrecv" && cat "$M/$B/far/ch/chan/tryrecv"; echo "again: $?"', env);
  t.equal(r.out, 'now\nagain: 1\n', 'tryrecv through the mount takes the message once');
  t.match(r.err, /Resource temporarily unavailable/);

  // A process on B: 20 MB of output streamed back through A, no byte lost.
  const n = 20_000_000;
  r = await sh(`mkdir -p "$M/$B/far/job/proc" && echo '{"Path":"sh","Args":["-c","head -c ${n} /dev/urandom | tee /tmp/circuit-mesh-mnt-$$"]}' > "$M/$B/far/job/proc/cmd" && cat "$M/$B/far/job/proc/stdout" | sha256sum && cat "$M/$B/far/job/proc/exit"`, env);
  t.equal(r.code, 0, r.err);
  const [sum, exit] = r.out.trim().split('\n');
  t.equal(exit, '0', 'the exit status came back');
  t.match(sum, /^[0-9a-f]{64} {2}-$/, 'a checksum of the stream');
  const peek = JSON.parse((await sh('cat "$M/$B/far/job/proc/peek"', env)).out);
  t.equal(peek.Phase, 'exited');
  // The same bytes the process produced: it kept a copy (tee) on this machine, named by its pid.
  const copy = `/tmp/circuit-mesh-mnt-${peek.Pid}`;
  t.teardown(() => fs.rmSync(copy, { force: true }));
  const wrote = fs.readFileSync(copy);
  t.equal(wrote.length, n, 'the process wrote every byte');
  const want = createHash('sha256').update(wrote).digest('hex');
  t.equal(sum.slice(0, 64), want, 'what came through the mount is what the process wrote');
});
