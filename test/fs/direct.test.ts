import { spawn } from 'child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'fs';
import { tmpdir } from 'os';
import { dirname, join } from 'path';
import t, { type Test } from 'tap';
import { eventually, mountServer, sh } from './helpers';
import { OutputBuffer } from '../../src/node/output-buffer';
import { havePump } from '../../src/node/pump';

/**
 * Reads of a process's output answered on the FUSE thread straight from the child's pipe while
 * nothing of the stream is buffered (src/fs/ops/direct.ts, patches/fuse-native-direct.patch,
 * docs/fs.md "Reading output at the pipe"): the lending rules on an OutputBuffer with a stand-in
 * lender, then a real mount whose JavaScript thread is blocked while a reader goes on, and a
 * reader killed between a read and its write, whose bytes the next reader still gets, both with
 * the answers spliced from the pipe to FUSE (patches/fuse-native-splice.patch: the last answer is
 * then kept in a pipe of its own) and read into memory (CIRCUIT_NO_FUSE_SPLICE=1).
 */
// eslint-disable-next-line @typescript-eslint/no-var-requires
const binding = require('node-gyp-build')(dirname(require.resolve('fuse-native/package.json'))) as Record<string, unknown>;
const skip = typeof binding.fuse_native_direct_lend !== 'function' && 'fuse-native is not patched with fuse-native-direct.patch (scripts/patch-fuse-native.sh)';
// Only the output pump lends a pipe: without it (native/fdtake not built) Node reads stdout.
const noPump = !havePump() && 'native/fdtake has no output pump here (scripts/build-native.sh): Node reads the output, nothing is lent';
const spliced = binding.fuse_native_direct_spliced as undefined | (() => [boolean, number]);
const noSplice = !spliced && 'fuse-native is not patched with fuse-native-splice.patch (scripts/patch-fuse-native.sh)';

function lender() {
  const l = { state: 'reading' as 'reading' | 'held' | 'lent', pending: 0, unlends: 0 };
  return Object.assign(l, {
    lend: () => {
      l.state = l.pending ? 'held' : 'lent';
      return l.pending ? ('held' as const) : 42;
    },
    unlend: () => {
      l.state = 'reading';
      l.unlends++;
    },
  });
}

t.test('direct: the pipe is lent only once nothing read before is left; reclaim moves the reader on and keeps the last answer', async (t) => {
  const buf = new OutputBuffer('stdout');
  const l = lender();
  buf.lender = l;
  buf.push(Buffer.from('abcdef'));
  const lease = buf.acquire();
  const into = Buffer.alloc(4);
  t.equal(lease.readNow(into, 4, 0), 4);
  let revoked = 0;
  const revoke = () => void revoked++;
  l.pending = 1;
  t.equal(lease.lendPipe(4, revoke), undefined, 'bytes still on their way from the pump');
  t.equal(l.state, 'held', 'but the pump reads no more meanwhile');
  l.pending = 0;
  t.equal(lease.lendPipe(4, revoke), undefined, 'two bytes still buffered here');
  t.equal(lease.readNow(into, 4, 4), 2);
  t.equal(lease.lendPipe(6, revoke), 42, 'drained: the pipe is lent');
  t.equal(lease.lendPipe(6, revoke), undefined, 'once');
  lease.reclaim(1000, Buffer.from('KEEP'));
  t.equal(l.state, 'reading', 'reclaimed: the pump reads again');
  t.equal(buf.total, 1006, 'the borrowed bytes count as produced');
  buf.push(Buffer.from('after'));
  await lease.release(1006 - 4); // the reader never passed on its last answer
  const next = buf.acquire();
  t.equal((await next.read(100))?.toString(), 'KEEPafter', 'the next reader gets the last answer first, then what came after');
  t.equal(revoked, 0);
});

t.test('direct: the end takes the pipe back first; a lease that ends while the pump is held lets it read again', async (t) => {
  const buf = new OutputBuffer('stdout');
  const l = lender();
  buf.lender = l;
  const lease = buf.acquire();
  lease.lendPipe(0, () => lease.reclaim(10, Buffer.from('0123456789')));
  t.equal(l.state, 'lent');
  buf.end();
  t.equal(l.state, 'reading', 'the borrower was asked for the pipe back before the end');
  t.equal(buf.total, 10);
  const other = new OutputBuffer('stdout');
  const l2 = lender();
  other.lender = l2;
  other.push(Buffer.from('x'));
  const held = other.acquire();
  t.equal(held.lendPipe(0, () => {}), undefined, 'a byte is still buffered');
  t.not(l2.state, 'reading', 'the pump is asked to stop reading');
  await held.release(0);
  t.equal(l2.state, 'reading', 'released before the lend: the pump reads again');
});

async function setup(t: Parameters<typeof mountServer>[0], cmd: string) {
  const { client, dir } = await mountServer(t);
  const id = dir.split('/').pop();
  await client.make(`/${id}/p`, 'proc', { Env: null, Dir: '', Path: 'bash', Args: ['-c', cmd], Scrub: false });
  const work = mkdtempSync(join(tmpdir(), 'circuit-direct-'));
  t.teardown(() => rmSync(work, { recursive: true, force: true }));
  return { file: `${dir}/p/proc/stdout`, work };
}

t.test('direct: with the JavaScript thread blocked, a reader of stdout goes on reading from the pipe', { skip: skip || noPump }, async (t) => {
  const { file, work } = await setup(t, 'head -c 40000000 /dev/zero');
  const before = spliced?.()[1] ?? 0;
  const out = join(work, 'out');
  // The first 4 MB go through JavaScript (its buffer, then the lend once it is drained); the
  // next 8 MB are read while this thread is blocked.
  // One process throughout: a lent pipe serves the reader it was lent to (its pid), and a close
  // in another process (a flush) takes it back.
  const reader = 'open(my $f, "<", $ARGV[0]) or die; my ($n, $b) = (0, ""); '
    + 'while ($n < 4000000) { my $r = sysread($f, $b, 65536); die unless $r; $n += $r } '
    + 'open(my $r, ">", "$ARGV[1].ready"); close($r); $n = 0; '
    + 'while ($n < 8000000) { my $r = sysread($f, $b, 65536); die unless $r; $n += $r } '
    + 'open(my $o, ">", "$ARGV[1].tmp"); print $o "$n\\n"; close($o); rename("$ARGV[1].tmp", $ARGV[1]); '
    + '1 while sysread($f, $b, 65536)';
  const child = spawn('perl', ['-e', reader, file, out], { stdio: 'ignore' });
  const exited = new Promise((res) => child.on('exit', res));
  await eventually(() => existsSync(`${out}.ready`), 10_000);
  const nap = new Int32Array(new SharedArrayBuffer(4));
  const until = Date.now() + 5000;
  while (!existsSync(out) && Date.now() < until) Atomics.wait(nap, 0, 0, 2);
  t.ok(existsSync(out), '8 MB read while this thread was blocked: the FUSE thread answered from the pipe');
  await exited;
  t.ok(Number(readFileSync(out, 'utf8')) >= 8000000, 'every byte it asked for');
  if (spliced) t.ok(spliced()[1] - before > 50, `the FUSE thread spliced its answers (${spliced()[1] - before})`);
});

for (const how of ['spliced', 'read'] as const) {
  t.test(`direct (${how}): a reader killed between a read and its write leaves those bytes to the next reader`, { skip: skip || (how === 'spliced' && noSplice) }, async (t) => {
    if (how === 'read') {
      // read at the mount's init, which the mount has had once setup returns
      process.env.CIRCUIT_NO_FUSE_SPLICE = '1';
      t.teardown(() => delete process.env.CIRCUIT_NO_FUSE_SPLICE);
    }
    await killedReader(t, how);
  });
}

async function killedReader(t: Test, how: 'spliced' | 'read') {
  const { file, work } = await setup(t, 'seq 1 3000000');
  if (spliced) t.equal(spliced()[0], how === 'spliced', `answers from the pipe ${how === 'spliced' ? 'are' : 'are not'} spliced`);
  const before = spliced?.()[1] ?? 0;
  const first = join(work, 'first');
  // perl (perl-base, in every Debian): a reader with no other thread, whose write count moves
  // only with its own writes. 60 reads of up to 64 KiB, each written out; the 61st never is.
  const reader = 'open(my $f, "<", $ARGV[0]) or die; open(my $o, ">", $ARGV[1]) or die; '
    + 'for (1..60) { my $n = sysread($f, my $b, 65536); last unless $n; syswrite($o, $b) } '
    + 'sysread($f, my $b, 65536); kill "KILL", $$';
  const child = spawn('perl', ['-e', reader, file, first], { stdio: 'ignore' });
  const signal = await new Promise((res) => child.on('exit', (_c, s) => res(s)));
  t.equal(signal, 'SIGKILL');
  const rest = join(work, 'rest');
  const cat = await new Promise<number | null>((res) => spawn('bash', ['-c', 'cat "$1" > "$2"', 'c', file, rest], { stdio: 'ignore' }).on('exit', res));
  t.equal(cat, 0);
  const want = (await sh('seq 1 3000000')).stdout;
  const got = readFileSync(first, 'utf8') + readFileSync(rest, 'utf8');
  t.ok(readFileSync(first).length > 0, 'the killed reader wrote what it read before');
  t.equal(got.length, want.length, `not a byte lost or read twice (${readFileSync(first).length} + ${readFileSync(rest).length})`);
  t.ok(got === want, 'the two readers together have the stream, in order');
  if (how === 'spliced') t.ok(spliced!()[1] - before > 10, `the FUSE thread spliced its answers (${spliced!()[1] - before})`);
  else if (spliced) t.equal(spliced()[1], before, 'no answer was spliced');
}
