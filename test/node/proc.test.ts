import t from 'tap';
import * as fs from 'node:fs';
import * as os from 'node:os';
import { Server } from '../../src/node/server';
import type { OutputReader, ProcCmd } from '../../src/api/types';
import type { ProcStat } from '../../src/node/kinds/proc';
import { tmpDir } from '../helpers/tmp';

const cmd = (c: Partial<ProcCmd>): ProcCmd => ({ Env: null, Dir: '', Path: '', Args: null, Scrub: false, ...c });
const sh = (script: string, extra: Partial<ProcCmd> = {}) => cmd({ Path: '/bin/sh', Args: ['-c', script], ...extra });

let n = 0;
async function setup(t: { teardown(fn: () => unknown): void }): Promise<{ s: Server; p: string }> {
  const s = new Server({ stderr: () => {}, graceMs: 500 });
  t.teardown(() => s.shutdown());
  return { s, p: `/${s.id}/p${n++}` };
}

async function readAll(r: OutputReader): Promise<string> {
  let out = '';
  for (;;) {
    const b = await r.read(65536);
    if (!b) break;
    out += b.toString();
  }
  await r.release();
  return out;
}

/** Fails the test instead of hanging when a promise does not settle in time. */
function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  return Promise.race([p, new Promise<T>((_, rej) => setTimeout(() => rej(new Error(`${what}: not within ${ms} ms`)), ms).unref())]);
}

t.test('proc: a Path without a slash is looked up in PATH', async (t) => {
  const { s, p } = await setup(t);
  await s.make(p, 'proc', cmd({ Path: 'echo', Args: ['found'] }));
  t.equal(await readAll(await s.openOutput(p, 'stdout')), 'found\n');
  const st = (await s.wait(p)) as ProcStat;
  t.equal(st.Phase, 'exited');
  t.equal(st.ExitCode, 0);
});

t.test('proc: Env replaces the environment', async (t) => {
  const { s, p } = await setup(t);
  await s.make(p, 'proc', cmd({ Path: '/usr/bin/env', Args: ['-0'], Env: ['A=1', 'B=two words'] }));
  const out = await readAll(await s.openOutput(p, 'stdout'));
  // tap's process-info hook adds its own variables (some spanning lines) to every child it sees
  // spawned; NUL-separated entries let us drop exactly those.
  const vars = out.split('\0').filter((v) => v !== '' && !/^(_TAPJS_|TAP|NODE_OPTIONS=)/.test(v));
  t.same(vars, ['A=1', 'B=two words'], 'exactly these and nothing inherited');
});

t.test('proc: a null Env inherits the server environment', async (t) => {
  const { s, p } = await setup(t);
  process.env.CIRCUIT_PROC_TEST = 'inherited';
  t.teardown(() => delete process.env.CIRCUIT_PROC_TEST);
  await s.make(p, 'proc', sh('echo $CIRCUIT_PROC_TEST'));
  t.equal(await readAll(await s.openOutput(p, 'stdout')), 'inherited\n');
});

t.test('proc: Dir sets the working directory', async (t) => {
  const { s, p } = await setup(t);
  const dir = fs.realpathSync(os.tmpdir());
  await s.make(p, 'proc', cmd({ Path: 'pwd', Dir: dir }));
  t.equal(await readAll(await s.openOutput(p, 'stdout')), dir + '\n');
});

t.test('proc: exec failure fails the make and leaves no element', async (t) => {
  const { s, p } = await setup(t);
  await t.rejects(s.make(p, 'proc', cmd({ Path: 'no-such-program-xyz' })), { message: /^exec error: / });
  t.equal(await s.peek(p), null);
  await t.rejects(s.make(p, 'proc', cmd({ Path: '/no/such/file' })), { message: /^exec error: .*no such file or directory/ });
  await t.rejects(s.make(p, 'proc', cmd({ Path: 'pwd', Dir: '/no/such/dir' })), { message: /exec error/ });
  const plain = tmpDir('circuit-proc-') + '/plain';
  fs.writeFileSync(plain, 'echo should not run\n', { mode: 0o644 });
  t.teardown(() => fs.rmSync(plain, { force: true }));
  await t.rejects(s.make(p, 'proc', cmd({ Path: plain })), { message: /exec error: .*permission denied/ }, 'not executable');
  t.equal(await s.peek(p), null);
  t.same(await s.list(`/${s.id}`), [], 'no anchor left either');
  await s.make(p, 'proc', cmd({ Path: 'true' }));
  t.ok(await s.peek(p), 'the anchor takes a process afterwards');
});

t.test('proc: output flows as it arrives', async (t) => {
  const { s, p } = await setup(t);
  await s.make(p, 'proc', sh('echo first; sleep 5; echo second'));
  const r = await s.openOutput(p, 'stdout');
  const first = await within(r.read(65536), 3000, 'the first line');
  t.equal(first!.toString(), 'first\n');
  t.equal(((await s.peek(p)) as ProcStat).Phase, 'running', 'before the process exited');
  await r.release();
  await s.signal(p, 'KILL');
  await s.wait(p);
});

t.test('proc: wait completes at exit without stdin being closed', async (t) => {
  const { s, p } = await setup(t);
  await s.make(p, 'proc', cmd({ Path: 'sleep', Args: ['0.2'] }));
  const st = (await within(s.wait(p), 5000, 'wait')) as ProcStat;
  t.equal(st.Phase, 'exited');
  t.equal(st.Exit, null);
});

t.test('proc: several waiters all get the stat', async (t) => {
  const { s, p } = await setup(t);
  await s.make(p, 'proc', sh('exit 3'));
  const all = (await within(Promise.all([s.wait(p), s.wait(p), s.wait(p)]), 5000, 'waits')) as ProcStat[];
  for (const st of all) t.same(st.Exit, { Body: 'exit status 3' });
});

t.test('proc: stdin reaches the process', async (t) => {
  const { s, p } = await setup(t);
  await s.make(p, 'proc', cmd({ Path: 'cat' }));
  const w = await s.openInput(p);
  await w.write(Buffer.from('ping\n'));
  const r = await s.openOutput(p, 'stdout');
  t.equal((await within(r.read(100), 3000, 'echo of stdin'))!.toString(), 'ping\n', 'without closing stdin');
  await w.close();
  t.equal(await r.read(100), null, 'closing stdin ends cat');
  await r.release();
  t.equal(((await s.wait(p)) as ProcStat).Phase, 'exited');
  await t.rejects(s.openInput(p), { code: 'EPIPE' }, 'stdin cannot be reopened once closed');
});

t.test('proc: stderr is its own stream', async (t) => {
  const { s, p } = await setup(t);
  await s.make(p, 'proc', sh('echo out; echo err >&2'));
  t.equal(await readAll(await s.openOutput(p, 'stderr')), 'err\n');
  t.equal(await readAll(await s.openOutput(p, 'stdout')), 'out\n');
});

for (const [name, want] of [['TERM', 'TERM'], ['term', 'TERM'], ['SIGTERM', 'TERM'], [' kill ', 'KILL'], ['9', 'KILL'], ['int', 'INT']]) {
  t.test(`proc: signal ${JSON.stringify(name)}`, async (t) => {
    const { s, p } = await setup(t);
    await s.make(p, 'proc', cmd({ Path: 'sleep', Args: ['100'] }));
    await s.signal(p, name);
    const st = (await within(s.wait(p), 5000, 'wait')) as ProcStat;
    t.equal(st.Phase, 'signaled');
    t.equal(st.Signal, want);
    t.equal(st.ExitCode, null);
    t.match(st.Exit, { Body: /^signal: / });
  });
}

t.test('proc: an unknown signal name is EINVAL and does nothing', async (t) => {
  const { s, p } = await setup(t);
  await s.make(p, 'proc', cmd({ Path: 'sleep', Args: ['100'] }));
  for (const bad of ['FOO', 'SIGFOO', '', '999', 'TERM9']) {
    await t.rejects(s.signal(p, bad), { code: 'EINVAL', message: /signal name not recognized/ }, JSON.stringify(bad));
  }
  t.equal(((await s.peek(p)) as ProcStat).Phase, 'running');
  await s.signal(p, 'KILL');
  await s.wait(p);
});

t.test('proc: signal after exit fails', async (t) => {
  const { s, p } = await setup(t);
  await s.make(p, 'proc', cmd({ Path: 'true' }));
  await s.wait(p);
  await t.rejects(s.signal(p, 'TERM'), { code: 'ESRCH' });
});

t.test('proc: scrub of a running process is EBUSY; after exit it detaches and wait is aborted', async (t) => {
  const { s, p } = await setup(t);
  await s.make(p, 'proc', cmd({ Path: 'sleep', Args: ['100'] }));
  await t.rejects(s.scrub(p), { code: 'EBUSY', message: /signal it first/ });
  t.equal(((await s.peek(p)) as ProcStat).Phase, 'running', 'still there, still running');
  await s.signal(p, 'TERM');
  await s.wait(p);
  await s.scrub(p);
  t.equal(await s.peek(p), null);
});

t.test('proc: wait after scrub of an exited process is aborted', async (t) => {
  const { s } = await setup(t);
  const p = `/${s.id}/w`;
  await s.make(p, 'proc', cmd({ Path: 'true' }));
  const wait = s.tree.find(['w'])!.element!.verb('wait')!;
  await s.wait(p);
  await s.scrub(p);
  await t.rejects(wait([]), { message: 'aborted' }, 'a handle held across the scrub');
  await t.rejects(s.wait(p), { code: 'ENOENT' }, 'the path has no element any more');
});

t.test('proc: Scrub:true removes the element once it exited and its output was read', async (t) => {
  const { s, p } = await setup(t);
  await s.make(p, 'proc', sh('echo bye', { Scrub: true }));
  const r = await s.openOutput(p, 'stdout');
  t.equal((await r.read(100))!.toString(), 'bye\n');
  t.ok(await s.peek(p), 'still there while its output is unread');
  t.equal(await r.read(100), null);
  await r.release();
  for (let i = 0; i < 100 && (await s.peek(p)) !== null; i++) await new Promise((res) => setTimeout(res, 20));
  t.equal(await s.peek(p), null, 'gone');
  t.same(await s.list(`/${s.id}`), []);
});

t.test('proc: Scrub:true also removes the element when the reader that drained it vanished before releasing', async (t) => {
  const { s, p } = await setup(t);
  await s.make(p, 'proc', sh('echo bye', { Scrub: true }));
  await s.wait(p);
  t.ok(await s.peek(p), 'exited with its output unread: still there');
  const r = (await s.openOutput(p, 'stdout')) as OutputReader & { abandon(): void };
  t.equal((await r.read(100))!.toString(), 'bye\n');
  t.equal(await r.read(100), null);
  r.abandon(); // what the server does when the reader's connection dies
  for (let i = 0; i < 100 && (await s.peek(p)) !== null; i++) await new Promise((res) => setTimeout(res, 20));
  t.equal(await s.peek(p), null, 'gone');
});

t.test('proc: Scrub:true with no output removes the element at exit', async (t) => {
  const { s, p } = await setup(t);
  await s.make(p, 'proc', cmd({ Path: 'true', Scrub: true }));
  for (let i = 0; i < 100 && (await s.peek(p)) !== null; i++) await new Promise((res) => setTimeout(res, 20));
  t.equal(await s.peek(p), null);
});

t.test('proc: peek has Cmd, Phase, Pid, ExitCode, Signal, Exit', async (t) => {
  const { s, p } = await setup(t);
  await s.make(p, 'proc', sh('read x; exit 7', { Dir: '/' }));
  const running = (await s.peek(p)) as ProcStat;
  t.same(Object.keys(running).sort(), ['Cmd', 'Exit', 'ExitCode', 'Phase', 'Pid', 'Signal']);
  t.equal(running.Phase, 'running');
  t.type(running.Pid, 'number');
  t.ok(fs.existsSync(`/proc/${running.Pid}`), 'Pid is the real process');
  t.equal(running.ExitCode, null);
  t.equal(running.Signal, null);
  t.equal(running.Exit, null);
  t.same(running.Cmd, { Env: null, Dir: '/', Path: '/bin/sh', Args: ['-c', 'read x; exit 7'], Scrub: false });
  const w = await s.openInput(p);
  await w.write(Buffer.from('\n'));
  const done = (await within(s.wait(p), 5000, 'wait')) as ProcStat;
  t.equal(done.Phase, 'exited');
  t.equal(done.ExitCode, 7);
  t.same(done.Exit, { Body: 'exit status 7' });
  t.equal(done.Pid, running.Pid);
  await w.close();
});

t.test('proc: one stdout reader at a time; the next gets what the first left', async (t) => {
  const { s, p } = await setup(t);
  await s.make(p, 'proc', sh('printf abcdef'));
  await s.wait(p);
  const r1 = await s.openOutput(p, 'stdout');
  await t.rejects(s.openOutput(p, 'stdout'), { code: 'EBUSY' });
  t.equal((await r1.read(2))!.toString(), 'ab');
  await r1.release();
  t.equal(await readAll(await s.openOutput(p, 'stdout')), 'cdef');
});

t.test('proc: server shutdown terminates running processes', async (t) => {
  const s = new Server({ stderr: () => {}, graceMs: 2000 });
  const p = `/${s.id}/long`;
  await s.make(p, 'proc', sh('trap "exit 0" TERM; sleep 100 & wait'));
  const pid = ((await s.peek(p)) as ProcStat).Pid!;
  await within(s.shutdown(), 5000, 'shutdown');
  t.notOk(fs.existsSync(`/proc/${pid}`) && !fs.readFileSync(`/proc/${pid}/stat`, 'utf8').includes(') Z '), 'the process is gone');
});

t.test('proc: server shutdown also ends a child forked after the TERM went out', async (t) => {
  // the shell forks `sleep` in its TERM trap, after the group's TERM was sent: that child
  // missed it and, unchecked, outlived the shutdown holding stdout open (test files took 100 s)
  const s = new Server({ stderr: () => {}, graceMs: 1000 });
  const p = `/${s.id}/late`;
  const dir = tmpDir('circuit-late-');
  await s.make(p, 'proc', sh(`trap 'sleep 100 & echo $! > ${dir}/pid; exit 0' TERM; echo up; while :; do sleep 0.05; done`));
  const out = await s.openOutput(p, 'stdout');
  t.equal((await out.read(10))?.toString(), 'up\n', 'the trap is set');
  await within(s.shutdown(), 5000, 'shutdown');
  const late = Number(fs.readFileSync(`${dir}/pid`, 'utf8'));
  t.ok(late > 0, `the trap forked a child (${late})`);
  const gone = () => !fs.existsSync(`/proc/${late}`) || fs.readFileSync(`/proc/${late}/stat`, 'utf8').includes(') Z ');
  for (let i = 0; i < 100 && !gone(); i++) await new Promise((r) => setTimeout(r, 30));
  t.ok(gone(), 'that child is gone too');
  if (!gone()) process.kill(late, 'SIGKILL');
});

t.test('proc: a NUL byte in Path, Dir, Args or Env is refused with EINVAL naming the field, never the value', async (t) => {
  const lines: string[] = [];
  const s = new Server({ stderr: (l) => lines.push(l), graceMs: 500 });
  t.teardown(() => s.shutdown());
  const cases: Array<[Partial<ProcCmd>, RegExp]> = [
    [{ Path: '/bin/ec\0ho' }, /path contains a NUL byte/],
    [{ Path: '/bin/echo', Dir: '/t\0mp' }, /dir contains a NUL byte/],
    [{ Path: '/bin/echo', Args: ['ok', 'a\0b'] }, /args\[1\] contains a NUL byte/],
    [{ Path: '/bin/echo', Env: ['A=1', 'TOKEN=s3cr\0et'] }, /env\[1\] contains a NUL byte/],
  ];
  for (const [i, [c, why]] of cases.entries()) {
    const err = await s.make(`/${s.id}/nul${i}`, 'proc', cmd(c)).then(() => null, (e: NodeJS.ErrnoException) => e);
    t.equal(err?.code, 'EINVAL', String(why));
    t.match(err?.message, why);
    t.equal(await s.peek(`/${s.id}/nul${i}`), null, 'no element');
  }
  t.notMatch(lines.join('\n'), /s3cr/, 'the environment value is not logged');
});
