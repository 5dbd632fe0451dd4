/**
 * A routed call whose path crosses a stopped daemon (issue 12, point 1): the CLI dials A, the
 * element lives on C. When C is SIGSTOPped, a pending `circuit recv` / `circuit wait` through A
 * must fail within seconds with a one-line `circuit: …` naming the server, not hang; after
 * SIGCONT the message it did not deliver is still at its home. The same when the middle server
 * A is stopped.
 */
import t from 'tap';
import { cli, cliBackground, eventually, kill, startServer, type Background, type Running } from '../helpers/daemon';

/** The exit of a background CLI within ms, or 'hung'. */
const exitWithin = (p: Background, ms: number) =>
  Promise.race([p.exited, new Promise<'hung'>((r) => setTimeout(() => r('hung'), ms))]);

t.test('routed calls across a stopped daemon fail promptly and lose nothing', async (t) => {
  const a: Running = await startServer(['--no-mount']);
  const b: Running = await startServer(['--no-mount', '-j', a.url]);
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
    c.proc.kill('SIGSTOP');
    const start = Date.now();
    const r = cliBackground(a.url, ['recv', ch]);
    const code = await exitWithin(r, 20_000);
    const took = Date.now() - start;
    if (code === 'hung') await kill(r);
    c.proc.kill('SIGCONT');
    t.not(code, 'hung', `the recv ended (after ${took} ms)`);
    t.not(code, 0, 'and failed');
    t.equal(r.stdoutBytes().length, 0, 'it printed no message');
    t.match(r.errors(), /^circuit: .*\n$/, 'one line circuit: …');
    t.match(r.errors(), new RegExp(`${c.id}|stopped answering|unreachable`), 'naming the server or what happened');
    t.ok(took < 15_000, `within 15 s (${took} ms)`);
    const got = await eventually(async () => {
      const x = await cli(c.url, ['recv', ch]);
      return x.code === 0 ? x.stdout : undefined;
    }, 15_000);
    t.equal(got, 'kept', 'the message is still at its home');
  });

  t.test('home stopped: a pending routed wait fails', async (t) => {
    const p = `/${c.id}/stop/p`;
    t.equal((await cli(a.url, ['mkproc', p], JSON.stringify({ Path: 'sleep', Args: ['60'] }))).code, 0);
    const w = cliBackground(a.url, ['wait', p]);
    await new Promise((r) => setTimeout(r, 500));
    c.proc.kill('SIGSTOP');
    const start = Date.now();
    const code = await exitWithin(w, 20_000);
    const took = Date.now() - start;
    if (code === 'hung') await kill(w);
    c.proc.kill('SIGCONT');
    t.not(code, 'hung', `the wait ended (after ${took} ms)`);
    t.not(code, 0, 'and failed');
    t.match(w.errors(), /^circuit: .*\n$/, 'one line circuit: …');
    t.ok(took < 15_000, `within 15 s (${took} ms)`);
    // C rejoins after SIGCONT; the process is still there
    await eventually(async () => (await cli(a.url, ['peek', p])).code === 0, 20_000);
  });

  t.test('middle stopped: a pending routed recv fails, a later message is not lost', async (t) => {
    const ch = `/${c.id}/stop/mid`;
    t.equal((await cli(c.url, ['mkchan', ch, '2'])).code, 0);
    await eventually(async () => (await cli(b.url, ['peek', ch])).code === 0, 20_000);
    const r = cliBackground(b.url, ['recv', ch]);
    await new Promise((r) => setTimeout(r, 500));
    b.proc.kill('SIGSTOP');
    const start = Date.now();
    const code = await exitWithin(r, 20_000);
    const took = Date.now() - start;
    if (code === 'hung') await kill(r);
    t.not(code, 'hung', `the recv ended (after ${took} ms)`);
    t.not(code, 0, 'and failed');
    t.match(r.errors(), /^circuit: .*\n$/, 'one line circuit: …');
    t.ok(took < 15_000, `within 15 s (${took} ms)`);
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
