/**
 * The docker element against a real engine (started by the helper when needed) and a busybox
 * image imported locally: no registry is needed. Every container made here is removed.
 */
import t, { type Test } from 'tap';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type Docker from 'dockerode';
import { DockerElement, connectEngine, emptyRun, removeAllContainers } from '../../src/node/kinds/docker';
import type { DockerRun, OutputReader } from '../../src/api/types';
import type { ElementContext } from '../../src/node/element';
import { systemClock } from '../../src/kit/clock';
import { ensureDocker, ensureImage, containerListed } from '../helpers/docker';

const run = promisify(execFile);
let engine: Docker;
let image: string;
let seq = 0;

interface FakeCtx extends ElementContext {
  logs: string[];
  detached: number;
}

function fakeCtx(): FakeCtx {
  const ctx: FakeCtx = {
    path: `/X0123456789abcdef/docker-test/${process.pid}-${++seq}`,
    clock: systemClock,
    logs: [],
    detached: 0,
    log: (line) => ctx.logs.push(line),
    detach: () => ctx.detached++,
  };
  return ctx;
}

function spec(fields: Partial<DockerRun>): DockerRun {
  return { ...emptyRun(), Image: image, ...fields };
}

/** Makes an element whose container is removed when the test ends. */
async function make(t: Test, fields: Partial<DockerRun>, ctx = fakeCtx()): Promise<DockerElement> {
  const el = await DockerElement.make(spec(fields), ctx, engine);
  t.teardown(() => el.scrub());
  return el;
}

async function readAll(r: OutputReader): Promise<string> {
  const parts: Buffer[] = [];
  for (let b = await r.read(65536); b; b = await r.read(65536)) parts.push(b);
  await r.release();
  return Buffer.concat(parts).toString();
}

async function eventually(check: () => Promise<boolean> | boolean, ms = 10_000): Promise<boolean> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (await check()) return true;
    await new Promise((r) => setTimeout(r, 50));
  }
  return false;
}

type Inspect = { Id: string; Name: string; State: { Running: boolean; ExitCode: number; Status: string }; HostConfig: { Memory: number; CpuShares: number } };

t.before(async () => {
  await ensureDocker();
  image = await ensureImage();
  engine = await connectEngine();
});
t.teardown(async () => {
  await removeAllContainers();
});

t.test('docker: stdout and stderr are separate streams, and wait gives the exit', async (t) => {
  const el = await make(t, { Path: '/bin/sh', Args: ['-c', 'echo out; echo err >&2; exit 0'] });
  t.match(el.containerName, /^via-circuit-[0-9a-f]{16}$/);
  const [out, err] = await Promise.all([readAll(await el.openOutput('stdout')), readAll(await el.openOutput('stderr'))]);
  t.equal(out, 'out\n');
  t.equal(err, 'err\n');
  const w = (await el.wait()) as Inspect;
  t.equal(w.State.ExitCode, 0);
  t.equal(w.State.Running, false);
  t.equal(w.Name, `/${el.containerName}`);
});

t.test('docker: output flows as it is produced, before the container exits', async (t) => {
  const el = await make(t, { Path: '/bin/sh', Args: ['-c', 'echo first; sleep 30'] });
  const r = await el.openOutput('stdout');
  t.equal((await r.read(100))?.toString(), 'first\n');
  t.equal(((await el.peek()) as Inspect).State.Running, true);
  await r.release();
});

t.test('docker: stdin reaches the container and closes with the last writer', async (t) => {
  const el = await make(t, { Path: '/bin/cat' });
  const a = el.openInput();
  const b = el.openInput();
  await a.write(Buffer.from('hello '));
  await b.write(Buffer.from('world\n'));
  await a.close();
  t.equal(((await el.peek()) as Inspect).State.Running, true, 'one writer still open: cat still reads');
  await b.close();
  t.equal(await readAll(await el.openOutput('stdout')), 'hello world\n');
  t.equal(((await el.wait()) as Inspect).State.ExitCode, 0);
  t.throws(() => el.openInput(), { code: 'EPIPE' }, 'stdin stays closed');
});

t.test('docker: exit codes in wait and peek', async (t) => {
  const el = await make(t, { Path: '/bin/sh', Args: ['-c', 'exit 3'] });
  const w = (await el.wait()) as Inspect;
  t.equal(w.State.ExitCode, 3);
  t.equal(((await el.peek()) as Inspect).State.ExitCode, 3);
  t.same(Object.keys(w).sort(), ['Args', 'Config', 'Created', 'Driver', 'HostConfig', 'HostnamePath', 'HostsPath', 'Id',
    'Image', 'Mounts', 'Name', 'NetworkSettings', 'Path', 'ResolvConfPath', 'Run', 'State'], 'the original\'s subset of inspect, and the Run');
  t.match(w, { Run: { Path: '/bin/sh', Args: ['-c', 'exit 3'] } });
});

t.test('docker: TERM reaches sleep in the container', async (t) => {
  const el = await make(t, { Path: '/bin/sleep', Args: ['100'] });
  await el.signal(' term ');
  const w = (await el.wait()) as Inspect;
  t.equal(w.State.ExitCode, 143, '128 + SIGTERM');
  await t.rejects(el.signal('TERM'), { code: 'ESRCH' }, 'not running any more');
  await t.rejects(el.signal('NOPE'), { code: 'EINVAL' });
});

t.test('docker: an interrupted wait is EINTR and leaves the container alone', async (t) => {
  const el = await make(t, { Path: '/bin/sleep', Args: ['100'] });
  const ac = new AbortController();
  const waiting = t.rejects(el.wait({ signal: ac.signal }), { code: 'EINTR' });
  ac.abort();
  await waiting;
  t.equal(((await el.peek()) as Inspect).State.Running, true);
  await el.signal('KILL');
  t.equal(((await el.wait()) as Inspect).State.ExitCode, 137);
});

t.test('docker: memory limit and cpu shares reach the engine', async (t) => {
  const el = await make(t, { Path: '/bin/true', Memory: 64 << 20, CpuShares: 512 });
  const p = (await el.peek()) as Inspect;
  t.equal(p.HostConfig.Memory, 64 << 20);
  t.equal(p.HostConfig.CpuShares, 512);
  await el.wait();
});

t.test('docker: a volume shows a host file inside; Dir, Env and Entry apply', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'circuit-vol-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(join(dir, 'note'), 'from the host\n');
  const el = await make(t, {
    Volume: [`${dir}:/data:ro`], Dir: '/data', Env: ['GREETING=hi'],
    Entry: '/bin/sh', Args: ['-c', 'cat note; pwd; echo $GREETING'],
  });
  t.equal(await readAll(await el.openOutput('stdout')), 'from the host\n/data\nhi\n');
  t.equal(((await el.wait()) as Inspect).State.ExitCode, 0);
});

t.test('docker: scrub kills and removes the container; pending waits get aborted', async (t) => {
  const el = await make(t, { Path: '/bin/sleep', Args: ['100'] });
  const id = el.containerId;
  t.ok(await containerListed(id));
  const waiting = t.rejects(el.wait(), { code: 'ECANCELED', message: 'aborted' });
  await el.scrub();
  await waiting;
  await t.rejects(el.wait(), { code: 'ECANCELED' });
  t.notOk(await containerListed(id), 'docker ps -a shows it gone');
});

t.test('docker: an image that does not exist is a clear error and leaves no container', async (t) => {
  const ctx = fakeCtx();
  const err = await DockerElement.make(spec({ Image: 'circuit-no-such-image:none', Path: '/bin/true' }), ctx, engine)
    .then(() => null, (e: unknown) => e);
  t.match(err, { code: 'ENOENT', message: /^mkdkr error: .*no such image/i });
  const { stdout } = await run('docker', ['ps', '-aq', '--filter', `label=circuit.anchor=${ctx.path}`]);
  t.equal(stdout.trim(), '', 'no container left behind');
});

t.test('docker: a command that cannot start is an error and leaves no container', async (t) => {
  const ctx = fakeCtx();
  await t.rejects(DockerElement.make(spec({ Path: '/no/such/program' }), ctx, engine), { message: /^mkdkr error: / });
  const { stdout } = await run('docker', ['ps', '-aq', '--filter', `label=circuit.anchor=${ctx.path}`]);
  t.equal(stdout.trim(), '');
});

t.test('docker: an idle element starts later, once', async (t) => {
  const el = await DockerElement.make(null, fakeCtx(), engine);
  t.teardown(() => el.scrub());
  t.match(await el.peek(), { Run: null, State: { Status: 'idle', Running: false } });
  t.throws(() => el.openOutput('stdout'), { code: 'ESRCH' });
  await t.rejects(el.signal('TERM'), { code: 'ESRCH', message: 'no running process to signal' });
  await el.start(spec({ Path: '/bin/echo', Args: ['late'] }));
  t.equal(el.run?.Path, '/bin/echo');
  t.equal(await readAll(await el.openOutput('stdout')), 'late\n');
  await t.rejects(el.start(spec({ Path: '/bin/true' })), { code: 'EBUSY' });
});

t.test('docker: one reader at a time; unread bytes stay for the next', async (t) => {
  const el = await make(t, { Path: '/bin/echo', Args: ['abcdef'] });
  const r1 = await el.openOutput('stdout');
  t.throws(() => el.openOutput('stdout'), { code: 'EBUSY' });
  t.equal((await r1.read(3))?.toString(), 'abc');
  await r1.release();
  t.equal(await readAll(await el.openOutput('stdout')), 'def\n');
});

t.test('docker: unread output holds the container back (back-pressure)', async (t) => {
  const n = 8 << 20;
  const el = await make(t, { Path: '/bin/head', Args: ['-c', String(n), '/dev/zero'] });
  await new Promise((r) => setTimeout(r, 1500));
  t.equal(((await el.peek()) as Inspect).State.Running, true, 'blocked writing while nobody reads');
  const r = await el.openOutput('stdout');
  let total = 0;
  for (let b = await r.read(1 << 20); b; b = await r.read(1 << 20)) total += b.length;
  t.equal(total, n);
  t.equal(((await el.wait()) as Inspect).State.ExitCode, 0);
});

t.test('docker: Scrub detaches once the container exited and its output was read', async (t) => {
  const ctx = fakeCtx();
  const el = await make(t, { Path: '/bin/echo', Args: ['bye'], Scrub: true }, ctx);
  const id = el.containerId;
  await el.wait();
  t.equal(ctx.detached, 0, 'output not read yet');
  t.equal(await readAll(await el.openOutput('stdout')), 'bye\n', 'stderr is empty: nothing left to read there');
  t.ok(await eventually(() => ctx.detached === 1), 'detached');
  t.ok(await eventually(async () => !(await containerListed(id))), 'container removed');
});

t.test('docker: Lxc is ignored with a warning in the log', async (t) => {
  const ctx = fakeCtx();
  const el = await make(t, { Path: '/bin/true', Lxc: ['lxc.aa_profile=unconfined'] }, ctx);
  await el.wait();
  t.ok(ctx.logs.some((l) => /Lxc .*ignored/.test(l)));
  t.ok(ctx.logs.some((l) => l.startsWith(`Starting container ${el.containerName} (`) && l.endsWith(` at ${ctx.path}`)));
});

t.test('docker: removeAllContainers removes every container this process made', async (t) => {
  const a = await DockerElement.make(spec({ Path: '/bin/sleep', Args: ['100'] }), fakeCtx(), engine);
  const b = await DockerElement.make(spec({ Path: '/bin/sleep', Args: ['100'] }), fakeCtx(), engine);
  t.ok(await containerListed(a.containerId));
  t.ok((await removeAllContainers()) >= 2);
  t.notOk(await containerListed(a.containerId));
  t.notOk(await containerListed(b.containerId));
  t.match(await a.wait(), { State: { Running: false } }, 'a wait still ends');
  await a.scrub();
  await b.scrub();
});
