/**
 * A routed call whose path crosses a stopped daemon (issue 12, point 1): the CLI dials A, the
 * element lives on C. When C is SIGSTOPped, a pending `circuit recv` / `circuit wait` through A
 * must fail within seconds with a one-line `circuit: …` naming the server, not hang; after
 * SIGCONT the message it did not deliver is still at its home. The same when the middle server
 * A is stopped.
 */
import t, { type Test } from 'tap';
import { cli, cliBackground, eventually, kill, startServer, type Background, type Running } from '../helpers/daemon';

/** The exit of a background CLI within ms, or 'hung'. */
const exitWithin = (p: Background, ms: number) =>
  Promise.race([p.exited, new Promise<'hung'>((r) => setTimeout(() => r('hung'), ms))]);

/**
 * Stops server s (SIGSTOP) under a CLI call (started 500 ms before, or with stopFirst right
 * after): the call must end, failing with one `circuit: …` line, within 15 s. s stays stopped:
 * the caller sends SIGCONT when its test wants.
 */
async function endsWhileStopped(t: Test, s: Running, call: () => Background, what: string, stopFirst = false): Promise<Background> {
  let p = stopFirst ? undefined : call();
  if (p) await new Promise((r) => setTimeout(r, 500));
  s.proc.kill('SIGSTOP');
  const start = Date.now();
  p ??= call();
  const code = await exitWithin(p, 20_000);
  const took = Date.now() - start;
  if (code === 'hung') await kill(p);
  t.not(code, 'hung', `the ${what} ended (after ${took} ms)`);
  t.not(code, 0, 'and failed');
  t.match(p.errors(), /^circuit: .*\n$/, 'one line circuit: …');
  t.ok(took < 15_000, `within 15 s (${took} ms)`);
  return p;
}

t.test('routed calls across a stopped daemon fail promptly and lose nothing', async (t) => {
  const a: Running = await startServer(['--no-mount']);
  // B without native/fdtake, so that a recv through it writes its socket-pair stdout itself: a
  // server that writes into the CLI's stdout holds it open while it is stopped (docs/cli.md),
  // and these calls' end is seen when that stdout closes.
  const b: Running = await startServer(['--no-mount', '-j', a.url], { env: { CIRCUIT_NO_FDTAKE: '1' } });
  const c: Running = await startServer(['--no-mount', '-j', a.url]);
  t.teardown(async () => {
    for (const s of [a, b, c]) {
      try { s.proc.kill('SIGCONT'); } catch { /* gone */ }
      await s.stop();
    }
  });
  await eventually(async () => (await cli(a.url, ['ls', '/'])).stdout.split('\n').filter(Boolean).length === 3, 10_000);

  t.test('home stopped: a routed recv with its message waiting fails, the message stays', async (t) => {
    const ch = `/${c.id}/stop/ch`;
    t.equal((await cli(a.url, ['mkchan', ch, '2'])).code, 0);
    t.equal((await cli(c.url, ['send', ch], 'kept')).code, 0);
    // a first routed call, so A holds a pooled connection to C
    t.equal((await cli(a.url, ['peek', ch])).code, 0);
    const r = await endsWhileStopped(t, c, () => cliBackground(a.url, ['recv', ch]), 'recv', true);
    c.proc.kill('SIGCONT');
    t.equal(r.stdoutBytes().length, 0, 'it printed no message');
    t.match(r.errors(), new RegExp(`${c.id}|stopped answering|unreachable`), 'naming the server or what happened');
    const got = await eventually(async () => {
      const x = await cli(c.url, ['recv', ch]);
      return x.code === 0 ? x.stdout : undefined;
    }, 15_000);
    t.equal(got, 'kept', 'the message is still at its home');
  });

  t.test('home stopped: a pending routed wait fails', async (t) => {
    const p = `/${c.id}/stop/p`;
    t.equal((await cli(a.url, ['mkproc', p], JSON.stringify({ Path: 'sleep', Args: ['60'] }))).code, 0);
    await endsWhileStopped(t, c, () => cliBackground(a.url, ['wait', p]), 'wait');
    c.proc.kill('SIGCONT');
    // C rejoins after SIGCONT; the process is still there
    await eventually(async () => (await cli(a.url, ['peek', p])).code === 0, 20_000);
  });

  t.test('middle stopped: a pending routed recv fails, a later message is not lost', async (t) => {
    const ch = `/${c.id}/stop/mid`;
    t.equal((await cli(c.url, ['mkchan', ch, '2'])).code, 0);
    await eventually(async () => (await cli(b.url, ['peek', ch])).code === 0, 20_000);
    await endsWhileStopped(t, b, () => cliBackground(b.url, ['recv', ch]), 'recv');
    // while B is stopped, a message arrives at C; the pending recv B still carries must not take it
    t.equal((await cli(c.url, ['send', ch], 'later')).code, 0);
    b.proc.kill('SIGCONT');
    await new Promise((r) => setTimeout(r, 1000));
    const got = await eventually(async () => {
      const x = await cli(c.url, ['recv', ch]);
      return x.code === 0 ? x.stdout : undefined;
    }, 15_000);
    t.equal(got, 'later', 'the message is at its home');
  });
});
