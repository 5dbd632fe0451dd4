import t, { type Test } from 'tap';
import { execFile, execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { startServer, cli, eventually, haveSetpriv, type Running } from '../helpers/daemon';

/**
 * Issue 6: the mount admits only its owner unless --allow-other, and the operations log records
 * who did each operation (the connection's peer for the CLI, the local uid and pid for the mount).
 * Issue 10: with --allow-other other uids may look, not act, unless --allow-uid/--allow-group
 * name them; each refusal is one ops.log line.
 * The daemon runs as root here; "another uid" is nobody (65534) through setpriv. FUSE's own check
 * (without allow_other, only the mounting uid may enter) is what refuses: the mount point's parent
 * is world-searchable, so nothing else is in the way.
 */
const isRoot = process.getuid?.() === 0;
const haveFuse = fs.existsSync('/dev/fuse');
const skip = !isRoot ? 'needs root (to mount and to switch to another uid)' : !haveFuse ? 'no /dev/fuse' : !haveSetpriv ? 'no setpriv' : false;

const NOBODY = 65534;
const base = fs.mkdtempSync(path.join(os.tmpdir(), 'circuit-sec-mount-'));
fs.chmodSync(base, 0o755); // others may pass through to the mount point
t.teardown(() => fs.rmSync(base, { recursive: true, force: true }));

/** Runs a shell command as nobody; resolves with its exit code and output. */
function asNobody(script: string): Promise<{ code: number; stdout: string; stderr: string }> {
  return asUser(NOBODY, NOBODY, script);
}

/** Runs a shell command as uid/gid with these supplementary groups (none by default). */
function asUser(uid: number, gid: number, script: string, groups: number[] = []): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(
      'setpriv',
      ['--reuid', String(uid), '--regid', String(gid), ...(groups.length ? ['--groups', groups.join(',')] : ['--clear-groups']), '/bin/sh', '-c', script],
      { timeout: 15_000, cwd: '/' },
      (err, stdout, stderr) => resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr }),
    );
  });
}

interface OpLine {
  op: string;
  path?: string;
  ok?: boolean;
  error?: { code: string; message: string };
  origin?: { via: string; says?: string; peer?: string; uid?: number; pid?: number };
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

t.test('with --allow-other another uid may look, not act; refusals and origins are logged', { skip }, async (t) => {
  const { d, dir } = await mounted(t, 'shared', ['--allow-other']);
  t.match(d.stderr(), /Mounted the cluster at/);
  const X = `${dir}/${d.id}`;
  // things for nobody to look at and to try to change: a channel and a process made by root
  fs.mkdirSync(path.join(X, 'by-root', 'chan'), { recursive: true });
  fs.writeFileSync(path.join(X, 'by-root', 'chan', 'cap'), '2\n');
  fs.writeFileSync(path.join(X, 'by-root', 'chan', 'send'), 'for root\n');
  fs.mkdirSync(path.join(X, 'job', 'proc'), { recursive: true });

  const ls = await asNobody(`ls ${dir}`);
  t.equal(ls.code, 0, ls.stderr);
  t.equal(ls.stdout, `${d.id}\n`, 'nobody lists the mount');
  const cat = await asNobody(`cat ${X}/server/peek && cat ${X}/by-root/chan/peek && ls ${X}/job/proc`);
  t.equal(cat.code, 0, cat.stderr);
  t.match(cat.stdout, /"Id"/, 'and reads server/peek and the elements');

  const tries: Array<[string, string]> = [
    ['make an anchor', `mkdir ${X}/by-nobody`],
    ['make an element', `mkdir -p ${X}/by-root/proc`],
    ['start a process', `echo '{"Path":"id"}' > ${X}/job/proc/cmd`],
    ['send on a channel', `echo x > ${X}/by-root/chan/send`],
    ['take a message', `cat ${X}/by-root/chan/recv`],
    ['close a channel', `echo > ${X}/by-root/chan/close`],
    ['scrub an element', `rmdir ${X}/by-root/chan`],
    ['stop the server', `echo stop > ${X}/server/ctl`],
  ];
  for (const [what, script] of tries) {
    const r = await asNobody(script);
    t.not(r.code, 0, `nobody cannot ${what}`);
    t.match(r.stderr, /Permission denied/, `${what}: EACCES`);
  }
  t.same(fs.readdirSync(X).sort(), ['by-root', 'job', 'server'], 'nothing was made');
  t.equal(JSON.parse(fs.readFileSync(path.join(X, 'job', 'proc', 'peek'), 'utf8')).Phase, 'idle', 'no process started');
  t.equal(fs.readFileSync(path.join(X, 'by-root', 'chan', 'recv'), 'utf8'), 'for root\n', 'the message is still there, and the channel open');

  const refusals = (await eventually(() => {
    const l = opsLog(d).filter((x) => x.ok === false && x.error?.code === 'EACCES' && x.origin?.uid === NOBODY);
    return l.length >= tries.length ? l : undefined;
  }, 5000)) as OpLine[];
  t.equal(refusals.length, tries.length, 'one ops.log line per refusal');
  t.ok(refusals.every((x) => x.origin?.via === 'mount' && typeof x.origin.pid === 'number'), 'with the caller\'s uid and pid');
  t.ok(refusals.some((x) => x.op === 'mkdir' && x.path === `/${d.id}/by-nobody`), 'naming the op and the path');
  t.ok(refusals.some((x) => x.op === 'open' && x.path === `/${d.id}/job/proc/cmd`));

  // the owner acts as before; a CLI call is logged with where it came from
  const mkc = await cli(d.url, ['mkchan', `/${d.id}/by-cli`, '1']);
  t.equal(mkc.code, 0, mkc.stderr);
  const lines = (await eventually(() => {
    const l = opsLog(d);
    const has = (p: string) => l.some((x) => x.op === 'make' && x.path === `/${d.id}/${p}`);
    return has('by-cli') && has('by-root') ? l : undefined;
  }, 5000)) as OpLine[];
  const byPath = (p: string) => lines.find((x) => x.op === 'make' && x.path === `/${d.id}/${p}`)!;
  const byCli = byPath('by-cli');
  t.equal(byCli.origin?.via, 'tcp');
  t.equal(byCli.origin?.says, 'cli');
  t.match(byCli.origin?.peer, /^127\.0\.0\.1:\d+$/, "a CLI call is logged with the connection's peer");
  t.equal(byCli.origin?.uid, undefined, 'and no uid (the server cannot know it)');
  t.equal(byPath('by-root').origin?.via, 'mount');
  t.equal(byPath('by-root').origin?.uid, 0, "root's own mount call with uid 0");
  t.equal(byPath('by-root').origin?.pid, process.pid, 'and the pid of this test process');
});

t.test('--allow-uid and --allow-group name who may act', { skip }, async (t) => {
  const byUid = await mounted(t, 'uid', ['--allow-other', '--allow-uid', `12345,${NOBODY}`]);
  const mk = await asNobody(`mkdir -p ${byUid.dir}/${byUid.d.id}/by-nobody/chan && echo 1 > ${byUid.dir}/${byUid.d.id}/by-nobody/chan/cap && echo $$`);
  t.equal(mk.code, 0, `nobody, named by --allow-uid, makes a channel: ${mk.stderr}`);
  const shellPid = Number(mk.stdout.trim());
  const lines = (await eventually(() => {
    const l = opsLog(byUid.d);
    return l.some((x) => x.op === 'cap' && x.path === `/${byUid.d.id}/by-nobody`) ? l : undefined;
  }, 5000)) as OpLine[];
  const make = lines.find((x) => x.op === 'make' && x.path === `/${byUid.d.id}/by-nobody`);
  t.equal(make?.origin?.uid, NOBODY, "the make is logged with the caller's uid");
  t.ok(typeof make?.origin?.pid === 'number' && make.origin.pid !== byUid.d.proc.pid, "and the caller's pid, not the daemon's");
  t.equal(lines.find((x) => x.op === 'cap')?.origin?.pid, shellPid, "the write to cap with the shell's pid");

  const byGroup = await mounted(t, 'group', ['--allow-other', '--allow-group', 'nogroup']);
  const ok = await asNobody(`mkdir ${byGroup.dir}/${byGroup.d.id}/a`);
  t.equal(ok.code, 0, `a member of nogroup (primary group) may act: ${ok.stderr}`);
  const other = await asUser(NOBODY, 1, `mkdir ${byGroup.dir}/${byGroup.d.id}/b`);
  t.match(other.stderr, /Permission denied/, 'a uid outside the group may not');
  const supplementary = await asUser(NOBODY, 1, `mkdir ${byGroup.dir}/${byGroup.d.id}/c`, [NOBODY]);
  t.equal(supplementary.code, 0, `nogroup as a supplementary group counts too: ${supplementary.stderr}`);

  const bad = await cli(null, ['start', '--no-mount', '--var', path.join(base, 'v-bad'), '--allow-uid', '0']);
  t.match(bad.stderr, /circuit: --allow-uid and --allow-group name who may act through an --allow-other mount; give --allow-other too\n$/);
});

t.test('fuse.conf: what a non-root mounter would need for --allow-other', { skip }, async (t) => {
  const conf = fs.existsSync('/etc/fuse.conf') ? fs.readFileSync('/etc/fuse.conf', 'utf8') : '';
  const allowed = /^\s*user_allow_other\s*$/m.test(conf);
  t.comment(`/etc/fuse.conf ${allowed ? 'has' : 'does not have'} user_allow_other: ${allowed ? 'non-root users may' : 'only root may'} mount with --allow-other`);
  t.pass('root mounts with allow_other regardless of /etc/fuse.conf');
});
