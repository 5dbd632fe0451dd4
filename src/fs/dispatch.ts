import type { Ops, Stat } from 'fuse-native';

/**
 * The JavaScript step between fuse-native's C binding and our ops, for the requests every read,
 * write, open and close makes (getattr, open, create, read, write, flush, release); fuse-native's
 * own step (its index.js) stays for the rest. Its step costs ~5 µs of the daemon's only thread per
 * request, and a send+recv pair through the mount makes eight (BENCHMARKS.md #4): per request it
 * builds a bound function, copies its arguments into arrays twice, starts a timer for every op
 * with a timeout, and answers the binding one `process.nextTick` later. Here each of those ops
 * has a function of fixed arity, answers the binding in the turn the op answers (the FUSE thread
 * waits for nothing else; the binding touches nothing of the request after the call returns),
 * and a timed op shares one coarse sweep instead of a timer of its own. Same answers, same
 * errors, same timeouts (to the second).
 */

/** fuse-native's binding: its op codes (`op_NAME`) and answer functions (`fuse_native_signal_NAME`). */
export type Binding = Record<string, unknown>;

/** A request from the binding: (the request's native handle, its op code, the op's arguments). */
export type Handler = (h: Buffer, opcode: number, ...args: never[]) => unknown;

type Signal = (h: Buffer, res: number, ...rest: unknown[]) => void;

/** The errno fuse-native answers a timed-out op with (ETIMEDOUT on Linux). */
const ETIMEDOUT = -110;

export interface Hooks {
  /** Runs first for every request (the mount notes the caller's identity). */
  before?(h: Buffer): void;
  /**
   * Hears each regular file's attributes as getattr answers them (the 18 uint32s the binding
   * reads), for the binding's own table (fuse-native-attrs.patch), which then answers that
   * path's getattr itself for as long as the kernel would have cached them.
   */
  remember?(path: string, ints: Uint32Array): void;
  /** Runs before each op that removes or renames a path (rmdir, unlink, rename): forget them all. */
  changed?(): void;
}

/** The largest read the binding hands us without a buffer of its own (fuse-native-pooled.patch). */
const POOLED_IO_MAX = 128 * 1024;
/** Buffers kept for reads: as many as reads answered at once, at most. */
const POOL_MAX = 16;

/** The mode bits of a regular file (S_IFREG) within S_IFMT. */
const S_IFMT = 0o170000;
const S_IFREG = 0o100000;

/**
 * The handlers to give the binding: `base` (fuse-native's) with ours in place for the ops above
 * that `ops` implements. `timeoutOf(name)` is the op's timeout in ms, or 0 for none (fuse-native's
 * `timeout` option).
 */
export function leanHandlers(binding: Binding, ops: Ops, base: Handler[], timeoutOf: (name: string) => number, hooks: Hooks = {}): Handler[] {
  const { before, remember, changed } = hooks;
  const changes = new Set(['rmdir', 'unlink', 'rename'].map((n) => binding[`op_${n}`]));
  // fuse-native's own handlers for the other ops, after `before` (and `changed`)
  const handlers = base.map((b, op) => {
    const first = changed && changes.has(op) ? (h: Buffer) => (before?.(h), changed()) : before;
    return first ? (h: Buffer, code: number, ...args: never[]) => (first(h), b(h, code, ...args)) : b;
  });
  const deadlines = new Deadlines();
  const pre = before ?? (() => {});
  const put = <K extends keyof Ops>(name: K & string, make: (sig: Signal, fn: NonNullable<Ops[K]>, ms: number) => Handler) => {
    const op = binding[`op_${name}`];
    const sig = binding[`fuse_native_signal_${name}`];
    const fn = ops[name];
    if (typeof op !== 'number' || typeof sig !== 'function' || typeof fn !== 'function') return;
    handlers[op] = make(sig as Signal, fn.bind(ops) as NonNullable<Ops[K]>, timeoutOf(name));
  };
  // The same answers fuse-native gives: a failed getattr still hands the binding a (zero) stat.
  const zero = new Uint32Array(18);
  const stat = new Uint32Array(18);
  put('getattr', (sig, fn, ms) => (h: Buffer, _op: number, path: string) => {
    pre(h);
    fn(path, deadlines.guard(ms, h, sig, (err, st) => {
      if (err) return sig(h, err, zero);
      const ints = statInts(stat, st);
      if (remember && ((st?.mode ?? 0) & S_IFMT) === S_IFREG) remember(path, ints);
      sig(h, 0, ints);
    }));
  });
  // open (flags) and create (mode) answer an fd, or 0 when there is none
  const opener = (sig: Signal, fn: NonNullable<Ops['open']>, ms: number) => (h: Buffer, _op: number, path: string, flagsOrMode: number) => {
    pre(h);
    fn(path, flagsOrMode, deadlines.guard(ms, h, sig, (err, fd) => sig(h, err, fd ?? 0)));
  };
  put('open', opener);
  put('create', opener);
  // read and write hand the binding back the request's buffer: FUSE's own (an external buffer),
  // which it then detaches; or, for a read with the binding's pooled I/O on (no buffer given),
  // one of ours, whose bytes it copies into FUSE's. A buffer of ours goes back to the pool only
  // after a read answered with bytes (or none): an op answered with an error may have been
  // answered before its handler let go of the buffer (context.ts's grace for an abort).
  const pool: Buffer[] = [];
  const io = (sig: Signal, fn: NonNullable<Ops['read']>, ms: number) =>
    (h: Buffer, _op: number, path: string, fd: number, buf: Buffer | undefined, len: number, lo: number, hi: number) => {
      pre(h);
      const pos = lo + hi * 4294967296;
      if (buf) return fn(path, fd, buf, len, pos, deadlines.guard(ms, h, sig, (n) => sig(h, n, 0, buf.buffer), () => [0, buf.buffer]));
      const own = pool.pop() ?? Buffer.allocUnsafeSlow(POOLED_IO_MAX);
      const view = len === POOLED_IO_MAX ? own : own.subarray(0, len);
      fn(path, fd, view, len, pos, deadlines.guard(ms, h, sig, (n) => {
        sig(h, n, 0, view);
        if (n >= 0 && pool.length < POOL_MAX) pool.push(own);
      }));
    };
  put('read', io);
  put('write', io);
  const close = (sig: Signal, fn: NonNullable<Ops['flush']>, ms: number) => (h: Buffer, _op: number, path: string, fd: number) => {
    pre(h);
    fn(path, fd, deadlines.guard(ms, h, sig, (err) => sig(h, err)));
  };
  put('flush', close);
  put('release', close);
  return handlers;
}

/** A stat as the 18 uint32s the binding reads (fuse-native's layout), written into `into`. */
export function statInts(into: Uint32Array, stat: Stat | undefined): Uint32Array {
  const st = stat as FullStat | undefined;
  into[0] = st?.mode || 0;
  into[1] = st?.uid || 0;
  into[2] = st?.gid || 0;
  split(into, 3, st?.size || 0);
  into[5] = st?.dev || 0;
  into[6] = st?.nlink || 1;
  into[7] = st?.ino || 0;
  into[8] = st?.rdev || 0;
  into[9] = st?.blksize || 0;
  split(into, 10, st?.blocks || 0);
  split(into, 12, ms(st?.atime));
  split(into, 14, ms(st?.mtime));
  split(into, 16, ms(st?.ctime));
  return into;
}

/** What fuse-native's getStatArray reads of a stat, our ops setting only some of it. */
type FullStat = Stat & { dev?: number; ino?: number; rdev?: number; blksize?: number; blocks?: number };

function split(into: Uint32Array, i: number, n: number): void {
  into[i] = n % 4294967296;
  into[i + 1] = (n - into[i]!) / 4294967296;
}

function ms(t: Date | number | undefined): number {
  return typeof t === 'number' ? t : t ? t.getTime() : Date.now();
}

/**
 * Timeouts of ops that have one, swept once a second: an op still unanswered when its time is up
 * gets ETIMEDOUT (as fuse-native answers it), and its late answer is dropped. An op without a
 * timeout gets its callback as it is, with no bookkeeping at all.
 */
class Deadlines {
  readonly #open = new Map<number, { due: number; expire(): void }>();
  #next = 0;
  #sweep: NodeJS.Timeout | undefined;

  guard<A extends unknown[]>(ms: number, h: Buffer, sig: Signal, answer: (...a: A) => void, late: () => unknown[] = () => []): (...a: A) => void {
    if (!ms) return answer;
    const id = this.#next++;
    this.#open.set(id, { due: Date.now() + ms, expire: () => sig(h, ETIMEDOUT, ...late()) });
    this.#sweep ??= setInterval(() => this.#expire(), 1000).unref();
    return (...a: A) => {
      if (this.#open.delete(id)) answer(...a);
    };
  }

  #expire(): void {
    const now = Date.now();
    for (const [id, e] of this.#open) {
      if (e.due > now) continue;
      this.#open.delete(id);
      e.expire();
    }
    if (this.#open.size === 0) {
      clearInterval(this.#sweep);
      this.#sweep = undefined;
    }
  }
}
