import t from 'tap';
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { urlOf } from '../helpers/daemon';
import { tmpDir } from '../helpers/tmp';
import { parseExamples, matches } from './cli-docs.test';

/**
 * The README's path, as a new user walks it. `circuit` comes onto PATH the way scripts/setup.sh
 * puts it there (`npm link`, here into a scratch npm prefix so the machine's own link is left
 * alone); the server is started with package.json's `start` command (what `npm start` runs after
 * setting up); and each README session runs in a new bash with a plain environment: no
 * $CIRCUIT, no -d, nothing but PATH and HOME. The server and the shells share a private mount
 * namespace with a fresh /run/circuit, so the CLI finds this server's control socket as it
 * would on a machine running one server, whatever else runs here. The one change to the
 * commands: /circuit becomes a temporary folder, since another server may hold /circuit.
 */
const ROOT = path.resolve(__dirname, '../../..');
const why = process.getuid?.() !== 0 ? 'needs root (mount namespace, FUSE)' : spawnSync('unshare', ['--version']).status !== 0 ? 'needs unshare and nsenter' : '';

if (why) t.plan(0, why);
else run();

function run(): void {
  t.test('README: after the set-up, every command runs as written in a new shell', async (t) => {
    const dir = tmpDir('circuit-readme-');
    const prefix = path.join(dir, 'npm');
    const mnt = path.join(dir, 'mnt');
    fs.mkdirSync(mnt);
    const link = spawnSync('npm', ['link', '--no-audit', '--no-fund'], { cwd: ROOT, env: { ...process.env, npm_config_prefix: prefix }, encoding: 'utf8' });
    t.equal(link.status, 0, 'npm link', { stderr: link.stderr });
    t.equal(fs.realpathSync(path.join(prefix, 'bin/circuit')), fs.realpathSync(path.join(ROOT, 'bin/circuit')), 'circuit on PATH is this checkout');
    const env = {
      PATH: `${prefix}/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin`,
      HOME: process.env.HOME ?? '/root',
      TMPDIR: process.env.TMPDIR ?? '/tmp',
      LANG: 'C.UTF-8',
    };

    // `npm start`'s own command, in a private mount namespace with an empty /run/circuit.
    const startCmd = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8')).scripts.start as string;
    const inner = `mkdir -p /run/circuit && mount -t tmpfs -o mode=0755 circuit-readme /run/circuit && cd "${ROOT}" && exec ${startCmd} --mount "${mnt}"`;
    const srv = spawn('unshare', ['--mount', '--propagation', 'private', 'sh', '-c', inner], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let err = '';
    srv.stderr!.on('data', (c) => (err += c));
    t.teardown(async () => {
      if (srv.exitCode === null) {
        const done = new Promise((r) => srv.once('exit', r));
        srv.kill('SIGTERM');
        await done;
      }
      // npm start's var folder is the default one in $TMPDIR; its ops.log outlives a clean stop.
      const v = /Created and locked (.*)\/\.lock/.exec(err)?.[1];
      if (v) fs.rmSync(v, { recursive: true, force: true });
    });
    const printed = await urlOf(srv, () => err);
    t.comment(`npm start printed ${printed}; on stderr:\n${err}`);
    t.match(err, new RegExp(`Mounted the cluster at ${mnt}`), 'npm start says where the mount is');
    t.match(err, /circuit ls \//, 'and how to reach the server');

    const blocks = parseExamples(fs.readFileSync(path.join(ROOT, 'README.md'), 'utf8'));
    t.equal(blocks.length, 2, 'a mount session and a CLI session');
    for (const steps of blocks) {
      // One new bash per session, in the server's mount namespace; a marker after each command
      // separates the outputs.
      const script = steps.map((s) => `${s.cmd.replace(/\s+# .*$/, '').replace(/\/circuit\b/g, mnt)} 2>&1; echo "@@@"`).join('\n');
      const out = execFileSync('nsenter', [`--mount=/proc/${srv.pid}/ns/mnt`, 'bash', '--norc', '--noprofile', '-c', script], { env, timeout: 60_000 }).toString();
      const parts = out.split('@@@\n');
      steps.forEach((s, i) => {
        const got = (parts[i] ?? '').replace(/\n$/, '').split('\n').filter((l, _j, a) => !(a.length === 1 && l === ''));
        t.ok(matches(s.expect, got), `$ ${s.cmd}`, { expect: s.expect, got });
      });
    }
  });
}
