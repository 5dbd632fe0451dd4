import { spawn } from 'child_process';
import { existsSync, mkdtempSync } from 'fs';
import { tmpdir } from 'os';
import { join } from 'path';
import t from 'tap';
import { blockedInRead, daemonMount, eventually, sh } from './helpers';

/**
 * The real daemon: `circuit start --mount DIR` in its own process, driven by bash through the
 * mount, then stopped with SIGTERM, which must unmount (failing blocked callers).
 */
const main = join(process.cwd(), 'dist/src/cli/main.js');

t.test('daemon: start --mount serves the shell; SIGTERM unmounts and frees blocked readers', { skip: !existsSync(main) && 'no CLI built' }, async (t) => {
  const base = mkdtempSync(join(tmpdir(), 'circuit-daemon-'));
  const dir = join(base, 'mnt');
  const d = spawn(process.execPath, [main, 'start', '--mount', dir, '--var', join(base, 'var'), '--socket', join(base, 'control.sock')], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  d.stdout.on('data', (b) => (out += b));
  d.stderr.on('data', (b) => (err += b));
  const exited = new Promise<number | null>((res) => d.on('exit', (code) => res(code)));
  t.teardown(async () => {
    d.kill('SIGKILL');
    await sh(`fusermount -uz ${dir} 2>/dev/null; rm -rf ${base}`);
  });
  // with no network flag it prints its control socket's path
  await eventually(() => out === `${join(base, 'control.sock')}\n`, 15_000).catch(() => t.fail(`no socket path: ${out} ${err}`));

  const r = await sh(`
    S=${dir}/$(readlink ${dir}/.self)
    mkdir -p $S/hi/ch/chan && echo 1 > $S/hi/ch/chan/cap && echo hello > $S/hi/ch/chan/send && cat $S/hi/ch/chan/recv
    s=$(date +%s%N); timeout 1 cat $S/hi/ch/chan/recv; rc=$?; e=$(date +%s%N); echo "rc=$rc ms=$(( (e - s) / 1000000 ))"
    mkdir -p $S/p/proc && echo '{"Path":"/bin/echo","Args":["from","proc"]}' > $S/p/proc/cmd && cat $S/p/proc/stdout $S/p/proc/exit`);
  t.match(r.stdout, /^hello\nrc=124 ms=(\d+)\nfrom proc\n0\n$/, r.stderr + err);
  const ms = Number(/ms=(\d+)/.exec(r.stdout)?.[1]);
  t.ok(ms < 2000, `timeout 1 cat recv returned in ${ms} ms`);

  const reader = sh(`cat ${dir}/$(readlink ${dir}/.self)/hi/ch/chan/recv; echo "rc=$?"`);
  await blockedInRead(`cat ${dir}/`);
  const t0 = Date.now();
  d.kill('SIGTERM');
  const got = await reader;
  t.match(got.stdout, /rc=[1-9]/, 'the blocked reader got an error');
  t.ok(Date.now() - t0 < 5000, `freed in ${Date.now() - t0} ms`);
  t.equal(await exited, 0, err);
  const mounts = await sh(`grep -c " ${dir} " /proc/mounts`);
  t.equal(mounts.stdout.trim(), '0', 'unmounted');
});

t.test('daemon: the processes it starts do not inherit the mount (/dev/fuse is close-on-exec)', async (t) => {
  const { d, run } = await daemonMount(t);
  const r = await run(`
    mkdir -p $S/p/proc && echo '{"Path":"/bin/sleep","Args":["30"]}' > $S/p/proc/cmd
    pid=$(tr -d ' \\t\\n' < $S/p/proc/peek | sed -n 's/.*"Pid":\\([0-9]*\\).*/\\1/p')
    echo "child=$pid"
    echo "child-fuse=$(ls -l /proc/$pid/fd 2>/dev/null | grep -c /dev/fuse)"
    echo "daemon-fuse=$(ls -l /proc/${d.proc.pid}/fd 2>/dev/null | grep -c /dev/fuse)"
    echo 9 > $S/p/proc/signal`);
  t.match(r.stdout, /child=\d+\n/, r.stderr);
  t.match(r.stdout, /daemon-fuse=[1-9]/, 'the daemon holds the mount (the check below looks at the right thing)');
  t.match(r.stdout, /child-fuse=0\n/, 'its child does not');
});
