import t from 'tap';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { startServer, cli, spawnCircuit, cleanEnv, eventually, alive } from '../helpers/daemon';
import { tmpDir } from '../helpers/tmp';

/** `circuit start` (docs/cli.md, issue 2): the URL line, logs, the var folder, shutdown. */
const URL_RE = /^circuit:\/\/127\.0\.0\.1:(\d+)\/(\d+)\/Q[0-9a-f]{16}$/;
const GO_TIME = '\\d{4}/\\d\\d/\\d\\d \\d\\d:\\d\\d:\\d\\d';

/** Runs `circuit ARGS` to its end (for starts that must fail), with a deadline. */
function run(args: string[], ms = 15_000): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const p = spawnCircuit(args, cleanEnv(), ['ignore', 'pipe', 'pipe']);
    let out = '';
    let err = '';
    p.stdout!.on('data', (c) => (out += c));
    p.stderr!.on('data', (c) => (err += c));
    const timer = setTimeout(() => {
      p.kill('SIGKILL');
      reject(new Error(`circuit ${args.join(' ')} still running after ${ms} ms; stderr: ${err}`));
    }, ms);
    p.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout: out, stderr: err });
    });
  });
}

t.test('start: exactly one line on stdout, the URL; exit 0 on SIGTERM', async (t) => {
  const d = await startServer();
  t.teardown(() => d.stop('SIGKILL'));
  const m = URL_RE.exec(d.url);
  t.ok(m, `URL ${d.url} has the form circuit://127.0.0.1:PORT/PID/Q<16 hex>`);
  t.equal(Number(m![2]), d.proc.pid, 'PID is the daemon process');
  let rest = '';
  d.proc.stdout!.on('data', (c) => (rest += c));
  const peek = JSON.parse((await cli(d.url, ['peek', `/${d.id}`])).stdout);
  t.equal(peek.Addr, d.url, 'the server element reports the same URL');
  t.match(peek.Joined, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d/);
  t.equal(await d.stop('SIGTERM'), 0, 'exit 0');
  t.equal(rest, '', 'nothing else was printed on stdout');
  t.match(d.stderr(), new RegExp(`^${GO_TIME} Attaching /${d.id} as server$`, 'm'));
});

t.test('start: SIGINT stops it cleanly too', async (t) => {
  const d = await startServer();
  t.teardown(() => d.stop('SIGKILL'));
  t.equal(await d.stop('SIGINT'), 0);
});

t.test('start: on SIGTERM its running processes get SIGTERM', async (t) => {
  const d = await startServer();
  t.teardown(() => d.stop('SIGKILL'));
  const p = `/${d.id}/sleeper`;
  t.equal((await cli(d.url, ['mkproc', p], JSON.stringify({ Path: 'sleep', Args: ['1000'] }))).code, 0);
  const pid = JSON.parse((await cli(d.url, ['peek', p])).stdout).Pid as number;
  t.teardown(() => { try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ } });
  // A process that traps TERM and writes a mark shows that it got SIGTERM, not SIGKILL.
  const mark = path.join(d.varDir, 'got-term');
  const q = `/${d.id}/trapper`;
  const script = `trap 'echo term > ${mark}; exit 0' TERM; while :; do sleep 0.1; done`;
  t.equal((await cli(d.url, ['mkproc', q], JSON.stringify({ Path: '/bin/sh', Args: ['-c', script] }))).code, 0);
  const trapper = JSON.parse((await cli(d.url, ['peek', q])).stdout).Pid as number;
  t.teardown(() => { try { process.kill(trapper, 'SIGKILL'); } catch { /* gone */ } });
  t.ok(alive(pid) && alive(trapper), 'both run');
  t.equal(await d.stop('SIGTERM'), 0, 'the daemon exits 0');
  t.notOk(alive(pid), 'sleep 1000 is gone');
  t.notOk(alive(trapper), 'the trapper is gone');
  t.equal(fs.readFileSync(mark, 'utf8'), 'term\n', 'it got SIGTERM');
});

t.test('start: a process that ignores SIGTERM gets SIGKILL after the grace period', async (t) => {
  const d = await startServer(['--no-mount', '--grace', '500']);
  t.teardown(() => d.stop('SIGKILL'));
  const p = `/${d.id}/stubborn`;
  const r = await cli(d.url, ['mkproc', p], JSON.stringify({ Path: '/bin/sh', Args: ['-c', "trap '' TERM; while :; do sleep 0.1; done"] }));
  t.equal(r.code, 0, r.stderr);
  const pid = JSON.parse((await cli(d.url, ['peek', p])).stdout).Pid as number;
  t.teardown(() => { try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ } });
  const t0 = Date.now();
  t.equal(await d.stop('SIGTERM'), 0, 'exit 0');
  t.ok(Date.now() - t0 < 5000, `stopped in ${Date.now() - t0} ms`);
  t.notOk(alive(pid), 'the stubborn process is gone');
});

t.test('start: -a HOST without a port fails with a clear message', async (t) => {
  const r = await run(['start', '--no-mount', '-a', '127.0.0.1', '--var', tmpDir('circuit-noport-')]);
  t.equal(r.code, 1);
  t.equal(r.stdout, '', 'no URL printed');
  t.match(r.stderr, /^circuit: .*port/m, 'names the missing port');
  t.notMatch(r.stderr, /\n\s+at /, 'no stack trace');
});

t.test('start: -addr (single dash) picks the address', async (t) => {
  const d = await startServer(['--no-mount', '-addr', '127.0.0.1:0']);
  t.teardown(() => d.stop('SIGKILL'));
  t.match(d.url, URL_RE);
});

t.test('start: a second daemon on a locked var folder fails', async (t) => {
  const d = await startServer();
  t.teardown(() => d.stop('SIGKILL'));
  const r = await run(['start', '--no-mount', '--var', d.varDir]);
  t.equal(r.code, 1);
  t.match(r.stderr, /obtain lock/);
  t.equal(r.stdout, '');
});

t.test('start: the stderr log has the make and scrub lines; the operations log is in the var folder', async (t) => {
  const d = await startServer();
  t.teardown(() => d.stop('SIGKILL'));
  const a = `/${d.id}/a`;
  await cli(d.url, ['mkchan', a, '3']);
  await cli(d.url, ['mkchan', a, '3']); // fails: logged too
  await cli(d.url, ['send', a], 'hello');
  await cli(d.url, ['recv', a]);
  await cli(d.url, ['scrub', a]);
  await eventually(() => d.stderr().includes(`Scrubbing "${a}"`), 3000);
  t.match(d.stderr(), new RegExp(`^${GO_TIME} Making chan at "${a}", using 3$`, 'm'), 'names are quoted');
  t.equal(d.stderr().split('\n').filter((l) => l.endsWith(`Making chan at "${a}", using 3`)).length, 2, 'the failed make is logged too');
  t.match(d.stderr(), new RegExp(`^${GO_TIME} Scrubbing "${a}"$`, 'm'));
  await cli(d.url, ['mkproc', `/${d.id}/p`], JSON.stringify({ Path: 'true', Env: ['SECRET=hunter2', 'PATH=/bin'] }));
  await eventually(() => d.stderr().includes('Making proc at'), 3000);
  t.match(d.stderr(), new RegExp(`^${GO_TIME} Making proc at "/${d.id}/p", using \\{"env":\\["SECRET=…","PATH=…"\\],"dir":"","path":"true",`, 'm'), 'proc: the Cmd on one line, lowercase keys, Env by names only');
  // a newline in an anchor name cannot split or forge a line
  await cli(d.url, ['mkchan', `/${d.id}/x\n2001/01/01 00:00:00 Attaching /Xforged as server`, '1']);
  await eventually(() => d.stderr().includes('Xforged'), 3000);
  t.notMatch(d.stderr(), /^2001\//m, 'no forged line');
  t.match(d.stderr(), /Making chan at "\/X[0-9a-f]{16}\/x\\n2001\/01\/01 00:00:00 Attaching \/Xforged as server", using 1$/m, 'the name is quoted, its newline escaped');

  const file = path.join(d.varDir, 'ops.log');
  t.ok(fs.existsSync(file), 'ops.log in the var folder');
  const readLog = () => fs.readFileSync(file, 'utf8').trim().split('\n').map((l) => JSON.parse(l));
  // The daemon may batch the lines of one tick into one write: wait for them to land.
  await eventually(() => readLog().filter((r) => r.path === a).length >= 5, 3000);
  const recs = readLog();
  const mine = recs.filter((r) => r.path === a);
  t.same(mine.map((r) => [r.op, r.ok]), [['make', true], ['make', false], ['send', true], ['recv', true], ['scrub', true]]);
  for (const r of mine) {
    t.type(r.seq, 'number');
    t.match(r.time, /^\d{4}-\d\d-\d\dT/);
    t.equal(r.origin?.via, 'tcp', 'origin says it came over TCP (the server decides)');
    t.equal(r.origin?.says, 'cli', 'and that its client said it was the CLI');
    t.match(r.origin?.peer, /^127\.0\.0\.1:\d+$/);
  }
  const seqs = recs.map((r) => r.seq);
  t.same(seqs, [...seqs].sort((x, y) => x - y), 'in sequence');
  t.equal(new Set(seqs).size, seqs.length, 'no sequence number twice');
  t.same(mine[1].error, { code: 'EBUSY', message: 'anchor already has an element' });
  const proc = recs.find((r) => r.op === 'make' && r.path === `/${d.id}/p`);
  t.same(proc?.args?.spec?.Env, ['SECRET=…', 'PATH=…'], 'ops.log keeps the names of Env, not the values');
  t.notOk(fs.readFileSync(file, 'utf8').includes('hunter2'), 'no Env value anywhere in ops.log');
  t.notOk(d.stderr().includes('hunter2'), 'nor on stderr');
  t.equal((fs.statSync(d.varDir).mode & 0o777).toString(8), '700', 'the var folder is private');

  const q = `/${d.id}/logged`;
  await cli(d.url, ['mkproc', q], JSON.stringify({ Path: 'cat' }));
  await cli(d.url, ['signal', 'FOO', q]);
  await cli(d.url, ['stdin', q], 'x');
  await cli(d.url, ['wait', q]);
  await cli(d.url, ['close', `/${d.id}/nothing`]);
  await eventually(() => readLog().some((r) => r.op === 'close' && r.path === `/${d.id}/nothing`), 3000);
  const later = readLog();
  const ops = later.filter((r) => r.path === q).map((r) => [r.op, r.ok]);
  t.same(ops.filter(([op]) => op !== 'stdin'), [['make', true], ['signal', false], ['stdin-close', true], ['wait', true]], 'signal, stdin close and wait are logged');
  const sig = later.find((r) => r.path === q && r.op === 'signal');
  t.same(sig.error, { code: 'EINVAL', message: 'signal name not recognized: "FOO"' });
  t.ok(later.some((r) => r.op === 'close' && r.ok === false && r.error?.code === 'ENOENT'), 'a failed close is logged with its error');
});

t.test('start: the daemon survives a garbage connection', async (t) => {
  const d = await startServer();
  t.teardown(() => d.stop('SIGKILL'));
  const port = Number(URL_RE.exec(d.url)![1]);
  const net = await import('node:net');
  for (const junk of [Buffer.from('GET / HTTP/1.0\r\n\r\n'), Buffer.from([0xff, 0xff, 0xff, 0xff, 1, 2, 3]), Buffer.alloc(100_000, 0x41)]) {
    await new Promise<void>((resolve) => {
      const s = net.connect(port, '127.0.0.1', () => s.end(junk));
      s.on('error', () => resolve());
      s.on('close', () => resolve());
      s.resume();
      setTimeout(() => { s.destroy(); resolve(); }, 2000).unref();
    });
  }
  t.equal(d.proc.exitCode, null, 'still running');
  t.equal((await cli(d.url, ['ls', '/'])).stdout, `/${d.id}\n`, 'still serving');
});

t.test('start: a clean stop leaves no lock and no socket in the var folder', async (t) => {
  const d = await startServer();
  t.teardown(() => d.stop('SIGKILL'));
  t.ok(fs.existsSync(path.join(d.varDir, '.lock')), 'locked while running');
  t.equal(await d.stop('SIGTERM'), 0);
  const left = fs.readdirSync(d.varDir);
  t.notOk(left.includes('.lock'), 'the lock is gone');
  t.same(left.filter((n) => fs.lstatSync(path.join(d.varDir, n)).isSocket()), [], 'no socket is left');
  t.same(left, ['ops.log'], 'only the operations log stays');
});
