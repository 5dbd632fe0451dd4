import t, { type Test } from 'tap';
import { execFile, execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { startServer, cli, eventually, type Running } from '../helpers/daemon';

/**
 * Issue 6: the mount admits only its owner unless --allow-other, and the operations log records
 * who did each operation (the connection's peer for the CLI, the local uid and pid for the mount).
 * The daemon runs as root here; "another uid" is nobody (65534) through setpriv. FUSE's own check
 * (without allow_other, only the mounting uid may enter) is what refuses: the mount point's parent
 * is world-searchable, so nothing else is in the way.
 */
const isRoot = process.getuid?.() === 0;
const haveFuse = fs.existsSync('/dev/fuse');
const haveSetpriv = (() => {
  try {
    execFileSync('setpriv', ['--version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
})();
const skip = !isRoot ? 'needs root (to mount and to switch to another uid)' : !haveFuse ? 'no /dev/fuse' : !haveSetpriv ? 'no setpriv' : false;

const NOBODY = 65534;
const base = fs.mkdtempSync(path.join(os.tmpdir(), 'circuit-sec-mount-'));
fs.chmodSync(base, 0o755); // others may pass through to the mount point
t.teardown(() => fs.rmSync(base, { recursive: true, force: true }));

/** Runs a shell command as nobody; resolves with its exit code and output. */
function asNobody(script: string): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(
      'setpriv',
      ['--reuid', String(NOBODY), '--regid', String(NOBODY), '--clear-groups', '/bin/sh', '-c', script],
      { timeout: 15_000, cwd: '/' },
      (err, stdout, stderr) => resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr }),
    );
  });
}

interface OpLine {
  op: string;
  path?: string;
  origin?: { via: string; peer?: string; uid?: number; pid?: number };
}
function opsLog(d: Running): OpLine[] {
  const f = path.join(d.varDir, 'ops.log');
  if (!fs.existsSync(f)) return [];
  return fs.readFileSync(f, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as OpLine);
}

async function mounted(t: Test, name: string, extra: string[]): Promise<{ d: Running; dir: string }> {
  const dir = path.join(base, name);
  const d = await startServer(['--mount', dir, ...extra]);
  t.teardown(async () => {
    await d.stop();
    try {
      execFileSync('fusermount', ['-uz', dir], { stdio: 'ignore' });
    } catch {
      /* unmounted by the daemon */
    }
  });
  await eventually(() => fs.readdirSync(dir).includes(d.id), 5000);
  return { d, dir };
}

t.test('without --allow-other another uid cannot list or read the mount', { skip }, async (t) => {
  const { d, dir } = await mounted(t, 'private', []);
  t.same(fs.readdirSync(dir), [d.id], 'the owner (root) lists it');
  t.match(fs.readFileSync(path.join(dir, d.id, 'server', 'peek'), 'utf8'), /"Id"/, 'and reads it');

  const sanity = await asNobody(`ls -d ${base} && echo ok`);
  t.equal(sanity.code, 0, `nobody can reach the mount point's parent: ${sanity.stderr}`);

  const ls = await asNobody(`ls ${dir}`);
  t.not(ls.code, 0, 'nobody cannot list the mount');
  t.match(ls.stderr, /Permission denied/);
  t.equal(ls.stdout, '');
  const cat = await asNobody(`cat ${dir}/${d.id}/server/peek`);
  t.not(cat.code, 0, 'nobody cannot read a file in it');
  t.match(cat.stderr, /Permission denied/);
  const mk = await asNobody(`mkdir -p ${dir}/${d.id}/nobody/chan`);
  t.not(mk.code, 0, 'nobody cannot make anything in it');
  t.match(mk.stderr, /Permission denied/);
  const stat = await asNobody(`stat ${dir}`);
  t.match(stat.stderr, /Permission denied/, 'not even stat the mount point');
  t.notOk(opsLog(d).some((l) => l.origin?.uid === NOBODY), 'nothing of nobody reached the server');
});

t.test('with --allow-other another uid can; the operations log names who did what', { skip }, async (t) => {
  const { d, dir } = await mounted(t, 'shared', ['--allow-other']);
  t.match(d.stderr(), /Mounted the cluster at/);

  const ls = await asNobody(`ls ${dir}`);
  t.equal(ls.code, 0, ls.stderr);
  t.equal(ls.stdout, `${d.id}\n`, 'nobody lists the mount');
  const cat = await asNobody(`cat ${dir}/${d.id}/server/peek`);
  t.equal(cat.code, 0, cat.stderr);
  t.match(cat.stdout, /"Id"/, 'and reads it');
  // The mount has no default_permissions: its files' modes are not enforced by the kernel, so a
  // user admitted by --allow-other can also write control files (make channels, start processes
  // as the daemon's user). SECURITY.md says so.
  const mk = await asNobody(`mkdir -p ${dir}/${d.id}/by-nobody/chan && echo 1 > ${dir}/${d.id}/by-nobody/chan/cap && echo $$`);
  t.equal(mk.code, 0, `nobody can make a channel through an --allow-other mount: ${mk.stderr}`);
  const shellPid = Number(mk.stdout.trim());

  // CLI calls are recorded with the connection's peer; root's mount calls with uid 0
  const mkc = await cli(d.url, ['mkchan', `/${d.id}/by-cli`, '1']);
  t.equal(mkc.code, 0, mkc.stderr);
  fs.mkdirSync(path.join(dir, d.id, 'by-root', 'chan'), { recursive: true });

  // (reads such as peek and ls are not logged; make, cap, send, … are)
  const lines = (await eventually(() => {
    const l = opsLog(d);
    const has = (p: string) => l.some((x) => x.op === 'make' && x.path === `/${d.id}/${p}`);
    return has('by-nobody') && has('by-cli') && has('by-root') ? l : undefined;
  }, 5000)) as OpLine[];
  const byPath = (p: string) => lines.find((x) => x.op === 'make' && x.path === `/${d.id}/${p}`)!;
  const nobody = byPath('by-nobody');
  t.equal(nobody.origin?.via, 'mount', 'a make through the mount is logged as such');
  t.equal(nobody.origin?.uid, NOBODY, "with the caller's uid");
  t.ok(typeof nobody.origin?.pid === 'number' && nobody.origin.pid > 0 && nobody.origin.pid !== d.proc.pid, `and the caller's pid (${nobody.origin?.pid}: mkdir, a child of sh ${shellPid}), not the daemon's`);
  const cap = lines.find((x) => x.op === 'cap' && x.path === `/${d.id}/by-nobody`);
  t.equal(cap?.origin?.uid, NOBODY, 'the write to cap too');
  t.equal(cap?.origin?.pid, shellPid, "by the shell that ran echo, with the shell's pid");
  const byCli = byPath('by-cli');
  t.equal(byCli.origin?.via, 'cli');
  t.match(byCli.origin?.peer, /^127\.0\.0\.1:\d+$/, "a CLI call is logged with the connection's peer");
  t.equal(byCli.origin?.uid, undefined, 'and no uid (the server cannot know it)');
  t.equal(byPath('by-root').origin?.uid, 0, "root's own mount call with uid 0");
  t.equal(byPath('by-root').origin?.pid, process.pid, 'and the pid of this test process');
});

t.test('fuse.conf: what a non-root mounter would need for --allow-other', { skip }, async (t) => {
  const conf = fs.existsSync('/etc/fuse.conf') ? fs.readFileSync('/etc/fuse.conf', 'utf8') : '';
  const allowed = /^\s*user_allow_other\s*$/m.test(conf);
  t.comment(`/etc/fuse.conf ${allowed ? 'has' : 'does not have'} user_allow_other: ${allowed ? 'non-root users may' : 'only root may'} mount with --allow-other`);
  t.pass('root mounts with allow_other regardless of /etc/fuse.conf');
});
