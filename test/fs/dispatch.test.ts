import t from 'tap';
import type { Ops } from 'fuse-native';
import { type Handler, leanHandlers, statInts } from '../../src/fs/dispatch';

/**
 * The lean dispatch against a recording stand-in for fuse-native's binding (op codes, answer
 * functions): the answers it gives the binding are the ones fuse-native's index.js gives, in
 * the same argument layout. The mount tests (mount, shell, interrupts, answers) run it against
 * the real binding and kernel.
 */
type Answer = [string, ...unknown[]];

function fakeBinding(answers: Answer[]) {
  const names = ['getattr', 'open', 'create', 'read', 'write', 'flush', 'release', 'mkdir', 'rmdir', 'unlink', 'rename'];
  const b: Record<string, unknown> = {};
  names.forEach((n, i) => {
    b[`op_${n}`] = i;
    b[`fuse_native_signal_${n}`] = (h: Buffer, ...rest: unknown[]) => answers.push([n, h.toString(), ...rest]);
  });
  return b;
}

const h = (s: string) => Buffer.from(s);
const call = (hs: Handler[], op: number, ...args: unknown[]) => (hs[op] as (...a: unknown[]) => unknown)(...args);

t.test('dispatch: each busy op answers the binding as fuse-native does, in the same turn', async (t) => {
  const answers: Answer[] = [];
  const seen: string[] = [];
  const mtime = new Date(1_700_000_000_123);
  const ops: Ops = {
    getattr: (p, cb) => (p === '/gone' ? cb(-2) : cb(0, { mode: 0o100444, uid: 7, gid: 8, size: 2 ** 33 + 5, mtime, atime: 5, ctime: mtime })),
    open: (p, flags, cb) => cb(0, p === '/none' ? undefined : 42 + flags),
    create: (_p, _mode, cb) => cb(-13),
    read: (_p, fd, buf, len, pos, cb) => {
      buf.write('hi');
      seen.push(`read fd=${fd} len=${len} pos=${pos}`);
      cb(2);
    },
    write: (_p, _fd, _buf, len, _pos, cb) => cb(len),
    flush: (_p, fd, cb) => cb(fd === 3 ? -5 : 0),
    release: (_p, _fd, cb) => cb(0),
  };
  const base: Handler[] = [];
  base[7] = ((hh: Buffer, _op: number, path: string) => answers.push(['mkdir(base)', hh.toString(), path])) as Handler;
  const hs = leanHandlers(fakeBinding(answers), ops, base, () => 0, { before: (hh) => void seen.push(`before ${hh.toString()}`) });

  call(hs, 0, h('a'), 0, '/x');
  const [name, handle, err, ints] = answers.shift()!;
  t.same([name, handle, err], ['getattr', 'a', 0]);
  t.same([...(ints as Uint32Array)], [...statInts(new Uint32Array(18), { mode: 0o100444, uid: 7, gid: 8, size: 2 ** 33 + 5, mtime, atime: 5, ctime: mtime })]);
  const st = ints as Uint32Array;
  t.same([st[0], st[1], st[2], st[3], st[4], st[6]], [0o100444, 7, 8, 5, 2, 1], 'mode, uid, gid, size split low/high, nlink 1');
  t.same([st[12], st[13]], [5, 0], 'atime in ms');
  t.equal(st[14]! + st[15]! * 2 ** 32, mtime.getTime(), 'mtime in ms');
  call(hs, 0, h('b'), 0, '/gone');
  const gone = answers.shift()!;
  t.same(gone.slice(0, 3), ['getattr', 'b', -2]);
  t.ok((gone[3] as Uint32Array).every((x) => x === 0), 'a failed getattr still hands over a (zero) stat');

  call(hs, 1, h('c'), 1, '/f', 1);
  call(hs, 1, h('d'), 1, '/none', 0);
  call(hs, 2, h('e'), 2, '/new', 0o644);
  t.same(answers.splice(0), [['open', 'c', 0, 43], ['open', 'd', 0, 0], ['create', 'e', -13, 0]], 'an fd, or 0 when there is none');

  const buf = Buffer.alloc(8);
  call(hs, 3, h('f'), 3, '/r', 9, buf, 8, 5, 1);
  t.same(answers.shift(), ['read', 'f', 2, 0, buf.buffer], 'a read answers its count and hands the buffer back');
  t.equal(buf.toString('utf8', 0, 2), 'hi');
  t.ok(seen.includes(`read fd=9 len=8 pos=${5 + 2 ** 32}`), 'the offset joined from its two halves');
  call(hs, 4, h('g'), 4, '/w', 9, buf, 8, 0, 0);
  t.same(answers.shift(), ['write', 'g', 8, 0, buf.buffer]);

  call(hs, 5, h('h'), 5, '/f', 3);
  call(hs, 6, h('i'), 6, '/f', 3);
  t.same(answers.splice(0), [['flush', 'h', -5], ['release', 'i', 0]]);

  call(hs, 7, h('j'), 7, '/d');
  t.same(answers.splice(0), [['mkdir(base)', 'j', '/d']], 'ops it does not take over go to fuse-native\'s handler');
  t.same(seen.filter((s) => s.startsWith('before')), ['a', 'b', 'c', 'd', 'e', 'f', 'g', 'h', 'i', 'j'].map((x) => `before ${x}`), 'before() runs first for every request, ours or not');
});

t.test('dispatch: ops the file system lacks keep fuse-native\'s handler', async (t) => {
  const base: Handler[] = [];
  const mine = (() => 'base') as Handler;
  base[1] = mine;
  const hs = leanHandlers(fakeBinding([]), {}, base, () => 0);
  t.equal(hs[1], mine, 'no open op: the base handler, untouched');
  t.equal(hs[0], undefined);
});

t.test('dispatch: a timed op unanswered in time gets ETIMEDOUT once, and its late answer is dropped', async (t) => {
  const answers: Answer[] = [];
  const pending: Array<(err: number, fd?: number) => void> = [];
  const reads: Array<(n: number) => void> = [];
  const ops: Ops = {
    open: (_p, _f, cb) => void pending.push(cb),
    read: (_p, _fd, _b, _l, _pos, cb) => void reads.push(cb),
  };
  const hs = leanHandlers(fakeBinding(answers), ops, [], (name) => (name === 'open' ? 50 : 0));
  call(hs, 1, h('slow'), 1, '/f', 0);
  call(hs, 1, h('quick'), 1, '/f', 0);
  pending[1]!(0, 5);
  t.same(answers.splice(0), [['open', 'quick', 0, 5]]);
  const buf = Buffer.alloc(1);
  call(hs, 3, h('r'), 3, '/r', 1, buf, 1, 0, 0);
  await new Promise((r) => setTimeout(r, 1300)); // the sweep runs once a second
  t.same(answers.splice(0), [['open', 'slow', -110]], 'ETIMEDOUT, as fuse-native answers a timed-out op');
  pending[0]!(0, 9);
  t.same(answers, [], 'the late answer is dropped');
  reads[0]!(1);
  t.same(answers.splice(0), [['read', 'r', 1, 0, buf.buffer]], 'an op without a timeout waits as long as it takes');
});

t.test('dispatch: a regular file\'s attributes are handed on for the binding\'s table; a removal forgets them', async (t) => {
  const answers: Answer[] = [];
  const remembered: Array<[string, number[]]> = [];
  const events: string[] = [];
  const ops: Ops = {
    getattr: (p, cb) => {
      if (p === '/gone') return cb(-2);
      cb(0, { mode: p.endsWith('/') ? 0o040755 : 0o100444, uid: 0, gid: 0, size: 0, mtime: 1, atime: 1, ctime: 1 });
    },
  };
  const base: Handler[] = [];
  for (const op of [7, 8, 9, 10]) base[op] = ((hh: Buffer) => void events.push(`base ${op} ${hh.toString()}`)) as Handler;
  const hs = leanHandlers(fakeBinding(answers), ops, base, () => 0, {
    remember: (path, ints) => void remembered.push([path, [...ints]]),
    changed: () => void events.push('changed'),
  });
  call(hs, 0, h('a'), 0, '/X/a/chan/recv');
  call(hs, 0, h('b'), 0, '/X/a/');
  call(hs, 0, h('c'), 0, '/gone');
  t.same(remembered.map(([p]) => p), ['/X/a/chan/recv'], 'only a regular file that exists');
  t.same(remembered[0]![1], [...statInts(new Uint32Array(18), { mode: 0o100444, uid: 0, gid: 0, size: 0, mtime: 1, atime: 1, ctime: 1 })], 'the ints the binding was answered with');
  t.equal(remembered[0]![1][0], 0o100444);
  call(hs, 7, h('mk'), 7, '/X/b');
  call(hs, 8, h('rm'), 8, '/X/a');
  call(hs, 9, h('un'), 9, '/X/f');
  call(hs, 10, h('mv'), 10, '/X/f', '/X/g');
  t.same(events, ['base 7 mk', 'changed', 'base 8 rm', 'changed', 'base 9 un', 'changed', 'base 10 mv'], 'rmdir, unlink and rename forget first; mkdir does not');
});

t.test('dispatch: a read the binding gives no buffer (pooled I/O) fills one of ours, reused only after an answer with bytes', async (t) => {
  const answers: Answer[] = [];
  const bufs: Buffer[] = [];
  const ops: Ops = {
    read: (p, _fd, buf, len, _pos, cb) => {
      bufs.push(buf);
      t.equal(buf.length, len, 'a buffer of the request\'s length');
      if (p === '/fail') return cb(-4);
      cb(buf.write(p.slice(1)));
    },
  };
  const hs = leanHandlers(fakeBinding(answers), ops, [], () => 0);
  call(hs, 3, h('a'), 3, '/ab', 1, undefined, 100, 0, 0);
  const [name, handle, n, zero, view] = answers.shift()!;
  t.same([name, handle, n, zero], ['read', 'a', 2, 0]);
  t.equal(view, bufs[0], 'the answer hands the binding the buffer to copy from');
  t.equal((view as Buffer).toString('utf8', 0, 2), 'ab');
  call(hs, 3, h('b'), 3, '/fail', 1, undefined, 128 * 1024, 0, 0);
  t.same(answers.splice(0).map((a) => a.slice(0, 3)), [['read', 'b', -4]]);
  t.equal(bufs[1]!.buffer, bufs[0]!.buffer, 'the buffer of a read answered with bytes is used again');
  call(hs, 3, h('c'), 3, '/c', 1, undefined, 10, 0, 0);
  t.not(bufs[2]!.buffer, bufs[1]!.buffer, 'one whose read failed is not: its handler may still hold it');
  t.equal(answers.shift()![2], 1);
});
