/**
 * The docker element end to end: a real daemon (`circuit start --docker --mount DIR`) on a real
 * engine, driven by the real CLI and by bash through the mount. The image is the locally
 * imported busybox (test/helpers/docker.ts): no registry. Every container a daemon here made is
 * removed in teardown (by its `circuit.pid` label), also when a test failed. The sessions in
 * docs/docker.md are these.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import t, { type Test } from 'tap';
import { cleanEnv, cli, cliBackground, eventually, kill, spawnCircuit, startServer, type Running } from '../helpers/daemon';
import { ensureImage } from '../helpers/docker';
import { daemonMount } from '../fs/helpers';

const run = promisify(execFile);

/** Ids of the containers, running or not, that the server with this pid made. */
async function containersOf(pid: number): Promise<string[]> {
  const { stdout } = await run('docker', ['ps', '-aq', '--filter', `label=circuit.pid=${pid}`], { timeout: 10_000 });
  return stdout.split('\n').filter(Boolean);
}

/** Removes (in teardown, after the daemon stopped) whatever a daemon's containers are left. */
function cleanupContainers(t: Test, pid: number) {
  t.teardown(async () => {
    const ids = await containersOf(pid).catch(() => []);
    if (ids.length) await run('docker', ['rm', '-f', '-v', ...ids], { timeout: 30_000 }).catch(() => {});
  });
}

/** `docker ps -a --filter name=NAME` names: [] once the container is gone. */
async function listed(name: string): Promise<string[]> {
  const { stdout } = await run('docker', ['ps', '-a', '--filter', `name=^/?${name}$`, '--format', '{{.Names}}'], { timeout: 10_000 });
  return stdout.split('\n').filter(Boolean);
}

/** A stopped daemon: SIGTERM, and SIGKILL if it is still there after 10 s. */
async function stopDaemon(d: Running) {
  await Promise.race([d.stop('SIGTERM'), new Promise((r) => setTimeout(r, 10_000))]);
  if (d.proc.exitCode === null && d.proc.signalCode === null) await d.stop('SIGKILL');
}

let image = '';
t.before(async () => {
  image = await ensureImage();
});

t.test('docker through the CLI: mkdkr, stdout, stderr, stdin, wait, signal, peek, scrub, --scrub, a missing image', async (t) => {
  const { d, url, X } = await daemonMount(t, ['--docker']);
  cleanupContainers(t, d.proc.pid!);
  const c = (args: string[], input?: string) => cli(url, args, input);
  const vol = mkdtempSync(join(tmpdir(), 'circuit-e2e-vol-'));
  t.teardown(() => rmSync(vol, { recursive: true, force: true }));
  writeFileSync(join(vol, 'f'), 'from the volume\n');

  // The original's Run, every field: the command runs with its Entry, Dir, Env and the volume.
  const box = `/${X}/box`;
  const spec = {
    Image: image,
    Memory: 64 * 1024 * 1024,
    Env: ['MODE=test'],
    Entry: '/bin/sh',
    Path: '-c',
    Args: ['echo $MODE; pwd; cat /data/f; echo oops >&2; exit 3'],
    Volume: [`${vol}:/data:ro`],
    Dir: '/tmp',
  };
  let r = await c(['mkdkr', box], JSON.stringify(spec));
  t.same([r.code, r.stdout, r.stderr], [0, '', ''], 'mkdkr');
  r = await c(['stdout', box]);
  t.same([r.code, r.stdout], [0, 'test\n/tmp\nfrom the volume\n'], 'stdout: Env, Dir, Volume');
  r = await c(['stderr', box]);
  t.same([r.code, r.stdout], [0, 'oops\n'], 'stderr');
  r = await c(['wait', box]);
  t.equal(r.code, 0, r.stderr);
  const waited = JSON.parse(r.stdout);
  t.equal(waited.State.ExitCode, 3, 'wait: the exit code');
  t.equal(waited.State.Running, false);
  const peek = JSON.parse((await c(['peek', box])).stdout);
  t.equal(peek.HostConfig.Memory, 64 * 1024 * 1024, 'peek: HostConfig.Memory');
  t.same(peek.Config.Entrypoint, ['/bin/sh'], 'peek: Entry');
  t.equal(peek.Config.WorkingDir, '/tmp', 'peek: Dir');
  t.ok(peek.Config.Env.includes('MODE=test'), 'peek: Env');
  t.ok(peek.Mounts.some((m: { Destination: string; RW: boolean }) => m.Destination === '/data' && m.RW === false), 'peek: the volume, read-only');
  t.equal(peek.Run.Image, image, 'peek: our Run');
  const boxName = String(peek.Name).replace(/^\//, '');
  t.match(boxName, /^via-circuit-[0-9a-f]{16}$/, 'the container name');
  t.same(await listed(boxName), [boxName], 'docker ps lists it');

  // stdin reaches a cat; its close ends it.
  const cat = `/${X}/cat`;
  r = await c(['mkdkr', cat], JSON.stringify({ Image: image, Path: 'cat' }));
  t.equal(r.code, 0, r.stderr);
  r = await c(['stdin', cat], 'through stdin\n');
  t.same([r.code, r.stderr], [0, ''], 'stdin');
  r = await c(['stdout', cat]);
  t.equal(r.stdout, 'through stdin\n', 'cat echoed it');
  t.equal(JSON.parse((await c(['wait', cat])).stdout).State.ExitCode, 0, 'cat exits 0 at EOF');

  // signal TERM to a sleep (the init passes it on): 128+15.
  const nap = `/${X}/nap`;
  r = await c(['mkdkr', nap], JSON.stringify({ Image: image, Path: 'sleep', Args: ['100'] }));
  t.equal(r.code, 0, r.stderr);
  const waiter = cliBackground(url, ['wait', nap]);
  t.teardown(() => kill(waiter));
  r = await c(['signal', 'TERM', nap]);
  t.same([r.code, r.stderr], [0, ''], 'signal TERM');
  t.equal(await waiter.exited, 0, waiter.errors());
  t.equal(JSON.parse(waiter.output()).State.ExitCode, 143, 'TERM ended the sleep: 143');
  r = await c(['signal', 'TERM', nap]);
  t.equal(r.stderr, 'circuit: signal error: process already finished\n', 'signal after exit');

  // scrub kills and removes a running container.
  const run1 = `/${X}/long`;
  await c(['mkdkr', run1], JSON.stringify({ Image: image, Path: 'sleep', Args: ['100'] }));
  const longName = String(JSON.parse((await c(['peek', run1])).stdout).Name).replace(/^\//, '');
  t.same(await listed(longName), [longName], 'running');
  r = await c(['scrub', run1]);
  t.same([r.code, r.stderr], [0, ''], 'scrub of a running container');
  t.same(await listed(longName), [], 'docker ps -a --filter name=… no longer lists it');
  t.equal((await c(['peek', run1])).stdout.trim(), 'null', 'no element');
  r = await c(['scrub', box]);
  t.equal(r.code, 0, 'scrub of an exited one');
  t.same(await listed(boxName), [], 'removed too');

  // mkdkr --scrub: the element and its container go once it exited and its output was read.
  const once = `/${X}/once`;
  r = await c(['mkdkr', '--scrub', once], JSON.stringify({ Image: image, Path: 'echo', Args: ['bye'] }));
  t.equal(r.code, 0, r.stderr);
  const onceName = String(JSON.parse((await c(['peek', once])).stdout).Name).replace(/^\//, '');
  t.equal((await c(['stdout', once])).stdout, 'bye\n', '--scrub: output');
  await c(['stderr', once]);
  await eventually(async () => (await c(['peek', once])).stdout.trim() === 'null', 10_000);
  t.pass('--scrub: the element went');
  await eventually(async () => (await listed(onceName)).length === 0, 10_000);
  t.pass('--scrub: the container went');

  // A missing image: one clear line, exit 1, no element, no container.
  const before = await containersOf(d.proc.pid!);
  r = await c(['mkdkr', `/${X}/bad`], JSON.stringify({ Image: 'circuit-no-such-image', Path: 'true' }));
  t.equal(r.code, 1, 'missing image: exit 1');
  t.equal(r.stderr, 'circuit: mkdkr error: No such image: circuit-no-such-image:latest\n', 'a clear error');
  t.equal((await c(['peek', `/${X}/bad`])).stdout.trim(), 'null', 'no element');
  t.same(await containersOf(d.proc.pid!), before, 'no container');
  r = await c(['mkdkr', `/${X}/bad`], '{"Image": 7}');
  t.equal(r.code, 1);
  t.match(r.stderr, /^circuit: mkdkr error: command json not parsing: [^\n]+\n$/, 'a bad Run: one line');
});

t.test('docker through the mount: mkdir, cmd, stdout, exit, cmd read back, signal, stdin, peek, rmdir', async (t) => {
  const { d, run: bash, S } = await daemonMount(t, ['--docker']);
  cleanupContainers(t, d.proc.pid!);
  const D = `${S}/X/box/docker`;
  let r = await bash(`mkdir -p ${D} && ls ${D} && cat ${D}/peek`);
  t.equal(r.code, 0, r.stderr);
  t.match(r.stdout, /^cmd\nenv\nerror\nexit\nhelp\npeek\nsignal\nstderr\nstdin\nstdout\nwait\n/, 'the files of proc (and help, env)');
  t.match(r.stdout, /"Status": "idle"/, 'idle until cmd is written');
  t.same(await containersOf(d.proc.pid!), [], 'no container yet');

  const cmd = JSON.stringify({ Image: image, Path: '/bin/sh', Args: ['-c', 'echo hi'] });
  r = await bash(`echo '${cmd}' > ${D}/cmd && cat ${D}/stdout && cat ${D}/exit && cat ${D}/cmd`, { limitMs: 30_000 });
  t.equal(r.code, 0, r.stderr);
  const [out, code, ...back] = r.stdout.split('\n');
  t.same([out, code], ['hi', '0'], 'stdout, exit');
  const run = JSON.parse(back.join('\n'));
  t.same([run.Image, run.Path, run.Args], [image, '/bin/sh', ['-c', 'echo hi']], 'cmd reads the Run back');
  r = await bash(`echo '${cmd}' > ${D}/cmd; echo "rc=$?"; cat ${D}/error`);
  t.equal(r.stdout, 'rc=1\nEBUSY: process already started\n', 'a second cmd: EBUSY');
  const name = String(JSON.parse((await bash(`cat ${D}/peek`)).stdout).Name).replace(/^\//, '');

  // signal: TERM to a sleep, exit 143.
  const N = `${S}/X/nap/docker`;
  r = await bash(
    `mkdir -p ${N} && echo '{"Image":"${image}","Path":"sleep","Args":["100"]}' > ${N}/cmd && echo TERM > ${N}/signal && cat ${N}/exit`,
    { limitMs: 30_000 },
  );
  t.same([r.code, r.stdout], [0, '143\n'], `echo TERM > signal; cat exit ${r.stderr}`);
  r = await bash(`echo NOPE > ${N}/signal; echo "rc=$?"; cat ${N}/error`);
  t.equal(r.stdout, 'rc=1\nEINVAL: signal name not recognized: "NOPE"\n', 'a bad signal: EINVAL');

  // stdin to a cat: its close closes the container's stdin.
  const K = `${S}/X/cat/docker`;
  r = await bash(
    `mkdir -p ${K} && echo '{"Image":"${image}","Path":"cat"}' > ${K}/cmd && echo 'to stdin' > ${K}/stdin && cat ${K}/stdout ${K}/exit`,
    { limitMs: 30_000 },
  );
  t.same([r.code, r.stdout], [0, 'to stdin\n0\n'], `stdin, stdout, exit ${r.stderr}`);

  // rmdir removes the element and its container.
  t.same(await listed(name), [name], 'listed before rmdir');
  r = await bash(`rmdir ${D} && ls ${S}/X/box`);
  t.same([r.code, r.stdout], [0, ''], `rmdir docker ${r.stderr}`);
  t.same(await listed(name), [], 'the container is gone');
  r = await bash(`rmdir ${N} ${K}`);
  t.equal(r.code, 0, r.stderr);
  t.same(await containersOf(d.proc.pid!), [], 'all gone');
});

t.test('docker: not enabled without --docker; no engine is a startup error; SIGTERM removes the containers', async (t) => {
  // A server without --docker.
  const plain = await startServer(['--no-mount']);
  t.teardown(() => stopDaemon(plain));
  let r = await cli(plain.url, ['mkdkr', `/${plain.id}/box`], JSON.stringify({ Image: image, Path: 'true' }));
  t.equal(r.code, 1);
  t.equal(r.stderr, 'circuit: mkdkr error: docker not enabled on this server\n', 'mkdkr on a server without --docker');

  // No engine: start exits 1 with a clear line.
  const var0 = mkdtempSync(join(tmpdir(), 'circuit-e2e-var-'));
  t.teardown(() => rmSync(var0, { recursive: true, force: true }));
  const p = spawnCircuit(['start', '--no-mount', '--docker', '--var', var0], cleanEnv({ DOCKER_HOST: 'unix:///nonexistent.sock' }), ['ignore', 'pipe', 'pipe']);
  let out = '';
  let err = '';
  p.stdout!.on('data', (b) => (out += b));
  p.stderr!.on('data', (b) => (err += b));
  const limit = setTimeout(() => p.kill('SIGKILL'), 20_000);
  const code = await new Promise<number | null>((res) => p.on('close', (c) => res(c)));
  clearTimeout(limit);
  t.equal(code, 1, 'circuit start --docker without an engine exits 1');
  t.equal(out, '', 'no URL printed');
  t.match(err, /^circuit: cannot use docker: [^\n]*nonexistent\.sock[^\n]*\n$/m, err);

  // The daemon's SIGTERM removes the containers it made, running or exited.
  const d = await startServer(['--no-mount', '--docker']);
  cleanupContainers(t, d.proc.pid!);
  t.teardown(() => stopDaemon(d));
  r = await cli(d.url, ['mkdkr', `/${d.id}/a`], JSON.stringify({ Image: image, Path: 'sleep', Args: ['100'] }));
  t.equal(r.code, 0, r.stderr);
  r = await cli(d.url, ['mkdkr', `/${d.id}/b`], JSON.stringify({ Image: image, Path: 'true' }));
  t.equal(r.code, 0, r.stderr);
  await cli(d.url, ['wait', `/${d.id}/b`]);
  t.equal((await containersOf(d.proc.pid!)).length, 2, 'two containers');
  t.equal(await d.stop('SIGTERM'), 0, 'the daemon exits 0 on SIGTERM');
  t.same(await containersOf(d.proc.pid!), [], 'and removed both');
});

t.test('docker: time from mkdkr to the first byte of stdout (CLI)', async (t) => {
  const d = await startServer(['--no-mount', '--docker']);
  cleanupContainers(t, d.proc.pid!);
  t.teardown(() => stopDaemon(d));
  const ms: number[] = [];
  for (let i = 0; i < 10; i++) {
    const p = `/${d.id}/t${i}`;
    const t0 = process.hrtime.bigint();
    const r = await cli(d.url, ['mkdkr', p], JSON.stringify({ Image: image, Path: 'echo', Args: ['x'] }));
    t.equal(r.code, 0, r.stderr);
    const out = cliBackground(d.url, ['stdout', p]);
    await eventually(() => out.stdoutBytes().length > 0, 20_000, 2);
    ms.push(Number(process.hrtime.bigint() - t0) / 1e6);
    await out.exited;
    await cli(d.url, ['scrub', p]);
  }
  ms.sort((a, b) => a - b);
  const median = (ms[4] + ms[5]) / 2;
  t.comment(`mkdkr → first byte of circuit stdout, CLI, 10 runs: median ${median.toFixed(0)} ms (min ${ms[0].toFixed(0)}, max ${ms[9].toFixed(0)})`);
  t.ok(median < 10_000, `median ${median.toFixed(0)} ms`);
});
