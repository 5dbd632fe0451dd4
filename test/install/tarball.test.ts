/**
 * The install path every Node user takes: `npm pack`, then `npm install -g` of the tarball into
 * an empty prefix. The package's postinstall must leave the patched fuse-native behind, so a
 * reader blocked in the mount is interruptible (`timeout 1 cat …/recv` returns at once), and
 * native/fdtake, which the daemon loads to write `circuit stdout` into a file; and a
 * daemon given an unpatched build (the upstream prebuild) refuses to mount unless told
 * --allow-unsafe-mount. npm works from its local cache when it can (--offline) and falls back to
 * the registry when the cache lacks something (--prefer-offline).
 */
import t from 'tap';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { cleanEnv, urlOf } from '../helpers/daemon';

const ROOT = path.resolve(__dirname, '../../..');
const why = process.getuid?.() !== 0 ? 'needs root to mount' : !fs.existsSync('/dev/fuse') ? 'needs /dev/fuse' : '';

if (why) t.plan(0, why);
else run();

function run(): void {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'circuit-install-'));
  const prefix = path.join(dir, 'prefix');
  const running: ChildProcess[] = [];
  const mounts: string[] = [];
  t.teardown(() => {
    for (const p of running) p.kill('SIGKILL');
    for (const m of mounts) spawnSync('fusermount', ['-uz', m]);
    fs.rmSync(dir, { recursive: true, force: true });
  });
  const env = cleanEnv({ PATH: `${prefix}/bin:${process.env.PATH}` });

  const npm = (args: string[], cwd: string) => spawnSync('npm', args, { cwd, env, encoding: 'utf8', timeout: 240_000 });

  /** `circuit start` from the installed package; resolves with what it prints (its socket's path), or rejects with its stderr. */
  const start = async (args: string[]) => {
    const mnt = fs.mkdtempSync(path.join(dir, 'mnt-'));
    const varDir = fs.mkdtempSync(path.join(dir, 'var-'));
    // its control socket in its var folder, not in root's shared /run/circuit
    const proc = spawn(path.join(prefix, 'bin/circuit'), ['start', '--mount', mnt, '--var', varDir, '--socket', path.join(varDir, 'control.sock'), ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    running.push(proc);
    mounts.push(mnt);
    let err = '';
    proc.stderr!.on('data', (c) => (err += c));
    const url = await urlOf(proc, () => err);
    return { url, mnt, proc, stderr: () => err };
  };
  const stop = (p: ChildProcess) => new Promise<void>((r) => (p.exitCode !== null ? r() : (p.once('exit', () => r()), p.kill('SIGTERM'))));

  t.test('npm install -g of the packed tarball builds the patched binding', async (t) => {
    const pack = npm(['pack', '--ignore-scripts', '--pack-destination', dir], ROOT); // dist/ is built already
    t.equal(pack.status, 0, 'npm pack', { stderr: pack.stderr.slice(-2000) });
    const tgz = path.join(dir, pack.stdout.trim().split('\n').pop()!);
    const t0 = Date.now();
    const install = (mode: string) => npm(['install', '-g', '--prefix', prefix, mode, '--no-audit', '--no-fund', tgz], dir);
    let r = install('--offline');
    if (r.status !== 0 && /ENOTCACHED/.test(r.stderr)) {
      t.comment('the npm cache lacks something; installing with the registry');
      r = install('--prefer-offline');
    }
    t.equal(r.status, 0, 'npm install -g', { stderr: r.stderr.slice(-2000) });
    t.comment(`npm install -g took ${Date.now() - t0} ms`);
    const mod = path.join(prefix, 'lib/node_modules/circuit/node_modules/fuse-native');
    t.ok(fs.existsSync(path.join(mod, 'build/Release/fuse.node')), 'fuse-native was built from source');
    t.ok(fs.existsSync(path.join(prefix, 'lib/node_modules/circuit/native/fdtake/build/Release/fdtake.node')), 'native/fdtake was built (scripts/build-native.sh)');
    const exported = spawnSync(process.execPath, ['-e', `const m = ${JSON.stringify(mod)}; const b = require(require.resolve('node-gyp-build', { paths: [m] }))(m); process.stdout.write(Object.keys(b).join(' '))`], { encoding: 'utf8' });
    const names = new Set(exported.stdout.split(' '));
    for (const f of ['fuse_native_caller', 'fuse_native_noflush', 'fuse_native_cloexec', 'fuse_native_answers', 'fuse_native_caller_at', 'fuse_native_attrs_put', 'fuse_native_pooled_io', 'fuse_native_direct_lend', 'fuse_native_release_notes']) {
      t.ok(names.has(f), `the build has ${f} (patches/ applied)`);
    }

    const d = await start([]);
    const x = fs.readdirSync(d.mnt).find((n) => n.startsWith('X'));
    t.ok(x, 'the mount lists the server');
    const ch = path.join(d.mnt, x!, 'inst', 'ch', 'chan');
    fs.mkdirSync(ch, { recursive: true });
    const t1 = Date.now();
    const cat = spawnSync('timeout', ['1', 'cat', path.join(ch, 'recv')], { timeout: 10_000 });
    const ms = Date.now() - t1;
    t.equal(cat.status, 124, 'timeout interrupted the blocked reader');
    t.ok(ms < 2000, `timeout 1 cat recv returned in ${ms} ms`);

    // `circuit stdout` into a file: the installed daemon takes the CLI's descriptor through
    // native/fdtake (src/node/pipe-out.ts), so it has loaded the add-on
    const circuit = path.join(prefix, 'bin/circuit');
    const p = `/${x}/inst/seq`;
    t.equal(spawnSync(circuit, ['mkproc', p, '-d', d.url], { env, input: JSON.stringify({ Path: 'seq', Args: ['1', '3'] }) }).status, 0, 'mkproc');
    const file = path.join(dir, 'out.txt');
    const fd = fs.openSync(file, 'w');
    const out = spawnSync(circuit, ['stdout', p, '-d', d.url], { env, stdio: ['ignore', fd, 'pipe'], timeout: 10_000 });
    fs.closeSync(fd);
    t.equal(out.status, 0, 'circuit stdout into a file', { stderr: String(out.stderr) });
    t.equal(fs.readFileSync(file, 'utf8'), '1\n2\n3\n');
    t.match(fs.readFileSync(`/proc/${d.proc.pid}/maps`, 'utf8'), /native\/fdtake\/build\/Release\/fdtake\.node/, 'the daemon loaded the add-on');
    // and its output pump (src/node/pump.ts): the process wrote into a pipe that one thread reads
    const fdp = `/${x}/inst/fd`;
    t.equal(spawnSync(circuit, ['mkproc', fdp, '-d', d.url], { env, input: JSON.stringify({ Path: 'readlink', Args: ['/proc/self/fd/1'] }) }).status, 0, 'mkproc');
    t.match(fs.readFileSync(path.join(d.mnt, x!, 'inst', 'fd', 'proc', 'stdout'), 'utf8'), /^pipe:\[\d+\]\n$/, 'stdout is a pipe');
    const threads = fs.readdirSync(`/proc/${d.proc.pid}/task`).map((id) => fs.readFileSync(`/proc/${d.proc.pid}/task/${id}/comm`, 'utf8').trim());
    t.equal(threads.filter((n) => n === 'circuit-pump').length, 1, 'one pump thread');
    await stop(d.proc);
  });

  t.test('a daemon with the unpatched binding refuses to mount unless --allow-unsafe-mount', async (t) => {
    const build = path.join(prefix, 'lib/node_modules/circuit/node_modules/fuse-native/build');
    fs.renameSync(build, build + '.patched'); // node-gyp-build now loads the upstream prebuild
    t.teardown(() => fs.renameSync(build + '.patched', build));
    await t.rejects(start([]), /circuit: refusing to mount: this fuse-native build does not report callers.*patch-fuse-native\.sh.*--allow-unsafe-mount/);
    const d = await start(['--allow-unsafe-mount']);
    t.match(d.stderr(), /fuse-native is not patched/);
    t.ok(fs.readdirSync(d.mnt).some((n) => n.startsWith('X')), 'it mounts when told to');
    await stop(d.proc);
  });
}
