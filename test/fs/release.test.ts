import { spawn } from 'child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'fs';
import { tmpdir } from 'os';
import { dirname, join } from 'path';
import t from 'tap';
import { eventually, mountServer, sh } from './helpers';

/**
 * Releases answered on the FUSE thread and told to JavaScript after (patches/fuse-native-release.patch,
 * src/fs/mount.ts noteReleases): a close whose release JavaScript cannot take at once (its thread
 * is blocked) holds none of the binding's threads, and every release still reaches the open
 * file: a reader of stdout that closes while JavaScript is blocked leaves the rest of the stream
 * to the next reader, not a lease that stays taken (EBUSY).
 */
// eslint-disable-next-line @typescript-eslint/no-var-requires
const binding = require('node-gyp-build')(dirname(require.resolve('fuse-native/package.json'))) as Record<string, unknown>;
const skip = typeof binding.fuse_native_release_notes !== 'function' && 'fuse-native is not patched with fuse-native-release.patch (scripts/patch-fuse-native.sh)';

// perl (perl-base, in every Debian): opens 30 snapshots and stdout, reads 1000 bytes of stdout
// into ARGV[3].first, says ready and waits for go; then, while the test's thread is blocked,
// counts the daemon's threads, closes the 30 snapshots 10 ms apart (their flush needs no
// JavaScript), waits 0.3 s, counts again and writes both counts; then closes stdout (whose flush
// waits for the test's thread to run again).
const CHILD = `
my ($peek, $stdout, $pid, $out) = @ARGV;
my @f; for (1..30) { open(my $h, "<", $peek) or die "open: $!"; push @f, $h }
open(my $s, "<", $stdout) or die "open: $!";
my $got = ""; while (length($got) < 1000) { my $n = sysread($s, my $b, 1000 - length($got)); die "read: $!" unless $n; $got .= $b }
open(my $w, ">", "$out.first") or die; print $w $got; close $w;
sub tasks { opendir(my $d, "/proc/$pid/task") or die; scalar(grep { !/^\\./ } readdir($d)) }
open(my $r, ">", "$out.ready"); close $r;
select(undef, undef, undef, 0.01) until -e "$out.go";
my $before = tasks();
for (@f) { close($_); select(undef, undef, undef, 0.01) }
select(undef, undef, undef, 0.3);
my $after = tasks();
open(my $o, ">", "$out.tmp"); print $o "$before $after\\n"; close $o; rename("$out.tmp", $out);
close $s;`;

t.test('release: 30 closes while JavaScript is blocked hold no FUSE thread, and a release reaches its open file', { skip }, async (t) => {
  const { client, dir } = await mountServer(t);
  const id = dir.split('/').pop();
  await client.make(`/${id}/c`, 'chan', { cap: 1 });
  await client.make(`/${id}/p`, 'proc', { Env: null, Dir: '', Path: 'seq', Args: ['1', '200000'], Scrub: false });
  const work = mkdtempSync(join(tmpdir(), 'circuit-release-'));
  t.teardown(() => rmSync(work, { recursive: true, force: true }));
  const out = join(work, 'out');
  const stdout = `${dir}/p/proc/stdout`;
  const child = spawn('perl', ['-e', CHILD, `${dir}/c/chan/peek`, stdout, String(process.pid), out], { stdio: 'ignore' });
  const exited = new Promise((res) => child.on('exit', res));
  await eventually(() => existsSync(`${out}.ready`), 10_000);
  writeFileSync(`${out}.go`, '');
  // Block this thread (the mount's) until the child is done, 5 s at most.
  const nap = new Int32Array(new SharedArrayBuffer(4));
  const until = Date.now() + 5000;
  while (!existsSync(out) && Date.now() < until) Atomics.wait(nap, 0, 0, 2);
  t.ok(existsSync(out), 'the child finished while this thread was blocked');
  await exited;
  const [before, after] = readFileSync(out, 'utf8').trim().split(' ').map(Number);
  // Each release handed to JavaScript holds a FUSE thread until it answers, and libfuse starts
  // another for the next request: 11 or 12 more threads here with CIRCUIT_NO_RELEASE_NOTES=1 (the
  // kernel keeps at most 12 releases in flight, its max_background). Answered on the FUSE thread,
  // a release frees it at once; libfuse still starts a thread whenever a request finds none idle,
  // so the closes are paced: back to back on a loaded machine (CI's, running other tests), the
  // kernel queued them faster than the preempted threads answered, and 4 threads were started.
  t.ok(after! - before! <= 3, `the daemon's threads: ${before} before the closes, ${after} after`);
  const rest = await sh(`cat "${stdout}"`);
  t.equal(rest.code, 0, `the next reader opens stdout: the first one's lease was given back (${rest.stderr.trim()})`);
  const want = (await sh('seq 1 200000')).stdout;
  t.ok(readFileSync(`${out}.first`, 'utf8') + rest.stdout === want, 'the two readers together have the stream, in order');
});
