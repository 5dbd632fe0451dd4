/**
 * Exactly-once delivery across servers (issue 12): another server's process output read through
 * the mount and through the CLI by readers that are interrupted or killed, then one full reader;
 * together they must have every byte once. Channel messages received through a server in the
 * middle that dies, or by a receiver that is killed, are neither lost nor delivered twice.
 */
import t from 'tap';
import { bash as sh, mountedPair } from '../helpers/mesh-mount';
import * as fs from 'node:fs';
import { execFileSync } from 'node:child_process';
import * as path from 'node:path';
import { cli, cliBackground, eventually, kill, startServer, type Running } from '../helpers/daemon';

/** A process printing 1..n in bursts of 500 lines, 0.1 s apart, so readers come and go while it writes. */
const slowSeq = (n: number) =>
  JSON.stringify({ Path: 'sh', Args: ['-c', `seq 1 ${n} | while read i; do echo $i; [ $((i % 500)) = 0 ] && sleep 0.1; done; true`] });

/** What is missing from and what is twice in a stream of the lines 1..n. */
function compare(text: string, n: number): { lost: number; twice: number; order: boolean } {
  const lines = text.split('\n').filter(Boolean).map(Number);
  const seen = new Map<number, number>();
  for (const l of lines) seen.set(l, (seen.get(l) ?? 0) + 1);
  let lost = 0;
  let twice = 0;
  for (let i = 1; i <= n; i++) {
    const c = seen.get(i) ?? 0;
    if (c === 0) lost++;
    if (c > 1) twice += c - 1;
  }
  return { lost, twice, order: lines.every((v, i) => i === 0 || v === lines[i - 1] + 1) };
}

t.test('exactly once across servers', async (t) => {
  const { base, M, a, b } = await mountedPair(t, 'circuit-once-');
  const env = { M, A: a.id, B: b.id, OUT: path.join(base, 'out') };
  await eventually(async () => (await sh('ls "$M"', env)).out.split('\n').filter(Boolean).length === 2, 5000);

  t.test('another server\'s stdout through the mount: interrupted readers, then one full reader', async (t) => {
    const n = 20_000;
    fs.rmSync(env.OUT, { force: true });
    const r = await sh(
      `mkdir -p "$M/$B/once/m/proc" && echo '${slowSeq(n)}' > "$M/$B/once/m/proc/cmd" && ` +
        `for i in 1 2 3 4; do timeout 0.3 cat "$M/$B/once/m/proc/stdout" >> "$OUT"; done; cat "$M/$B/once/m/proc/stdout" >> "$OUT"`,
      env,
    );
    t.equal(r.err, '');
    const got = compare(fs.readFileSync(env.OUT, 'utf8'), n);
    t.same(got, { lost: 0, twice: 0, order: true }, 'every line once, in order');
  });

  t.test('another server\'s stdout pushed on a data connection through the mount: interrupted readers, then one full reader', async (t) => {
    // Fast enough for each reader to cross PUSH_AFTER (2 MiB) and be pushed (src/node/push.ts):
    // 6 000 000 lines (~47 MB) in bursts of 200 000, 20 ms apart.
    const n = 6_000_000;
    fs.rmSync(env.OUT, { force: true });
    const burst = 200_000;
    const cmd = JSON.stringify({ Path: 'sh', Args: ['-c', `i=1; while [ $i -le ${n} ]; do seq $i $((i + ${burst} - 1)); i=$((i + ${burst})); sleep 0.02; done`] });
    // While the readers read, the mount's daemon has two connections to the home's port: its
    // session, and the data connection the stream is pushed on.
    const port = /:(\d+)\//.exec(b.url)![1]!;
    const r = await sh(
      `mkdir -p "$M/$B/once/push/proc" && echo '${cmd}' > "$M/$B/once/push/proc/cmd" && ` +
        `(for i in 1 2 3; do timeout 0.4 cat "$M/$B/once/push/proc/stdout" >> "$OUT"; done; ` +
        `cat "$M/$B/once/push/proc/stdout" >> "$OUT") & C=$!; most=0; ` +
        `while kill -0 $C 2>/dev/null; do k=$(ss -tnpH state established "( dport = :$PORT )" | grep -c "pid=$APID,"); [ $k -gt $most ] && most=$k; sleep 0.02; done; wait $C; echo $most`,
      { ...env, PORT: port, APID: String(a.proc.pid) },
    );
    t.equal(r.err, '');
    // compared byte for byte (a count of 6 000 000 lines is slow); the count says what differs
    const text = fs.readFileSync(env.OUT);
    const same = text.equals(execFileSync('seq', ['1', String(n)], { maxBuffer: 1 << 27 }));
    t.ok(same, 'every line once, in order');
    if (!same) t.same(compare(text.toString('latin1'), n), { lost: 0, twice: 0, order: true });
    t.equal(r.out.trim(), '2', 'the stream came on a data connection beside the session');
    // (the home does not push with a cluster key: test/mesh/push.test.ts)
  });

  t.test('another server\'s stdout through the CLI: readers killed (TERM, INT, HUP), then one full reader', async (t) => {
    const n = 20_000;
    const p = `/${b.id}/once/c`;
    t.equal((await cli(a.url, ['mkproc', p], slowSeq(n))).code, 0);
    let text = '';
    for (const sig of ['SIGTERM', 'SIGINT', 'SIGHUP', 'SIGTERM'] as const) {
      const r = cliBackground(a.url, ['stdout', p]);
      const before = text.length;
      await eventually(() => r.stdoutBytes().length > 0 || r.exitCode !== null, 5000, 1);
      t.equal(r.exitCode, null, `the reader is still running (${r.errors()})`);
      await new Promise((res) => setTimeout(res, 100));
      await kill(r, sig);
      const got = r.stdoutBytes().toString();
      t.comment(`${sig}: ${JSON.stringify(got.slice(0, 12))}…${JSON.stringify(got.slice(-12))}`);
      text += got;
      t.ok(text.length > before, `the reader killed with ${sig} got something`);
    }
    const last = await cli(a.url, ['stdout', p]);
    t.equal(last.code, 0, last.stderr);
    text += last.stdout;
    t.same(compare(text, n), { lost: 0, twice: 0, order: true }, 'every line once, in order');
  });
});

t.test('a routed message is acknowledged end to end: a middle server that dies, a receiver that is killed', async (t) => {
  const h: Running = await startServer(['--no-mount']);
  // M without native/fdtake: it then leaves a receiver's socket-pair stdout to the CLI, which
  // receives, acknowledges and writes itself (with it, M would write the message into that
  // socket itself, stopped CLI or not: src/node/pipe-out.ts).
  const m: Running = await startServer(['--no-mount', '-j', h.url], { env: { CIRCUIT_NO_FDTAKE: '1' } });
  t.teardown(async () => {
    if (m.proc.exitCode === null && m.proc.signalCode === null) await m.stop('SIGKILL');
    await h.stop();
  });
  await eventually(async () => (await cli(m.url, ['ls', '/'])).stdout.includes(h.id), 5000);
  const ch = `/${h.id}/once/ch`;
  t.equal((await cli(h.url, ['mkchan', ch, '1'])).code, 0);

  // A receiver through M gets the message but is stopped before it acknowledges; it is killed.
  const r1 = cliBackground(m.url, ['recv', ch]);
  await new Promise((res) => setTimeout(res, 500));
  r1.kill('SIGSTOP');
  t.equal((await cli(h.url, ['send', ch], 'one')).code, 0);
  await new Promise((res) => setTimeout(res, 300));
  await kill(r1);
  t.equal(r1.stdoutBytes().length, 0, 'the killed receiver wrote nothing');
  const again = await cli(m.url, ['recv', ch]);
  t.equal(again.stdout, 'one', 'the next receiver gets it');

  // Now M dies while its receiver holds the message, unacknowledged: the home takes it back.
  const r2 = cliBackground(m.url, ['recv', ch]);
  await new Promise((res) => setTimeout(res, 500));
  r2.kill('SIGSTOP');
  t.equal((await cli(h.url, ['send', ch], 'two')).code, 0);
  await new Promise((res) => setTimeout(res, 300));
  const dead = new Promise((res) => m.proc.once('exit', res));
  m.proc.kill('SIGKILL');
  await dead;
  r2.kill('SIGCONT');
  const code = await r2.exited;
  t.equal(r2.stdoutBytes().toString(), '', `the receiver whose middle server died did not write it (exit ${code}: ${r2.errors().trim()})`);
  const got = await Promise.race([cli(h.url, ['recv', ch]), new Promise<null>((res) => setTimeout(() => res(null), 5000))]);
  t.equal(got?.stdout, 'two', 'the home still had it: the next receiver gets it, once');
  t.match(JSON.parse((await cli(h.url, ['peek', ch])).stdout), { NumSend: 2, NumRecv: 2 });
});
