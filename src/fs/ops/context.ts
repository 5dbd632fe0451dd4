import { constants } from 'fs';
import type { Ops, Stat } from 'fuse-native';
import type { CallOptions, Client, Entry, Kind, Origin } from '../../api/types';
import { isPromise, type Now, then } from '../../kit/now';
import { CircuitError, E, SystemError, toCircuitError } from '../../kit/errors';
import { describe, errno, toErrno } from '../errno';
import type { Ctx } from '../files/control';
import { type Handle, Handles } from '../handles';
import { CallerWatch, callerProgress, callerWrote, interruptedNow } from '../interrupts';
import { type Node, ROUTES, type Routes } from '../routes';
import { LazyAbort, lazyOptions } from '../../kit/abort';
import type { DirectReads } from './direct';

/**
 * The state every FUSE op shares (the client, the open-file table, the routes, the ops in flight,
 * the last failure of each element) and the steps they share: answering, logging a failure,
 * resolving a path, opening and releasing a handle, running an op on a handle under an abort
 * signal. The ops themselves are in the other files of this folder; index.ts assembles them.
 */

/** Who made the request being dispatched: from the patched fuse-native, null without it. */
export interface Caller {
  pid: number;
  uid: number;
  gid: number;
}

export interface OpsDeps {
  client: Client;
  /** The caller of the op being dispatched right now (read synchronously at op entry). */
  caller(): Caller | null;
  log(line: string): void;
  /** Owner reported for every file: the mounting user. */
  uid: number;
  gid: number;
  watch?: CallerWatch;
  /** After an abort, how long a Client call may take to honour it before EINTR is sent anyway. */
  abortGraceMs?: number;
  /** The mount's shape (default: every registered kind's file table). */
  routes?: Routes;
  /** The table of opens whose flush the patched fuse-native answers itself (handles.ts). */
  noFlush?: Int32Array;
  /** The table of whole answers whose reads the patched fuse-native answers itself (handles.ts). */
  answers?: Int32Array;
}

/** One FUSE op, as fuse-native calls it. */
export type Op<K extends keyof Ops> = NonNullable<Ops[K]>;

export type Reply = (code: number) => void;

const { O_WRONLY, O_RDWR } = constants;
const ACCMODE = 3; // O_ACCMODE
export const DIR = 0o040755;
export const LINK = 0o120777;
export const FILE_MODE = { r: 0o100444, w: 0o100222, rw: 0o100666 } as const;

export class OpsContext {
  readonly client: Client;
  readonly routes: Routes;
  readonly handles: Handles;
  readonly watch: CallerWatch;
  /** The last failure of each element, by anchor: its `error` file. */
  readonly lastErrors = new Map<string, string>();
  private readonly grace: number;
  private readonly inFlight = new Set<LazyAbort>();
  private readonly started = new Date();
  private readonly attrs = new Map<number, Stat>();
  /** Set by shutdown: element ops fail EIO from then on. */
  closed = false;
  /** Streams' pipes lent to the FUSE thread (direct.ts), once the mount has the patched binding. */
  direct: DirectReads | undefined;

  constructor(private readonly deps: OpsDeps) {
    this.client = deps.client;
    this.routes = deps.routes ?? ROUTES;
    this.handles = new Handles(deps.noFlush, deps.answers);
    this.watch = deps.watch ?? new CallerWatch();
    this.grace = deps.abortGraceMs ?? 1000;
  }

  caller(): Caller | null {
    return this.deps.caller();
  }

  resolve(path: string): Node {
    return this.routes.resolve(path);
  }

  /**
   * The origin the operations log records for a caller: the last one made is given again while
   * the same process calls (nothing changes an origin once made), so a busy caller's lines
   * reuse one object and its JSON (src/node/oplog.ts) instead of making both per call.
   */
  origin(c: Caller | null): Origin {
    const o = this.lastOrigin;
    if (c ? o.pid === c.pid && o.uid === c.uid : o.pid === undefined) return o;
    return (this.lastOrigin = c ? { via: 'mount', pid: c.pid, uid: c.uid } : { via: 'mount' });
  }

  private lastOrigin: Origin = { via: 'mount' };

  /** The attributes of a directory, link or control file of this mode (one object per mode). */
  attr(mode: number): Stat {
    let a = this.attrs.get(mode);
    if (!a) {
      const { started } = this;
      a = {
        mode, uid: this.deps.uid, gid: this.deps.gid, size: 0, nlink: mode === DIR ? 2 : 1,
        mtime: started, atime: started, ctime: started,
      };
      this.attrs.set(mode, a);
    }
    return a;
  }

  /**
   * Runs act and replies with its result or its errno: in the same turn when act answers without
   * waiting, else once its promise settles. Failures are logged; successes are not (the server's
   * operations log records every operation with its caller).
   */
  answer<T>(op: string, path: string, caller: Caller | null, act: () => Now<T>, reply: (err: number, v?: T) => void, quiet = false) {
    const fail = (err: unknown) => {
      // A lookup of a name that is not there is routine, not worth a log line.
      if (quiet && err instanceof CircuitError && err.code === 'ENOENT') return reply(toErrno(err));
      reply(this.failure(op, path, caller, err));
    };
    let v: Now<T>;
    try {
      v = act();
    } catch (err) {
      return later(fail, err);
    }
    if (isPromise(v)) v.then((x) => reply(0, x), fail);
    else later(reply, 0, v);
  }

  failure(op: string, path: string, caller: Caller | null, err: unknown): number {
    this.deps.log(`fs: ${op} ${path}${who(caller)}: ${describe(err)}`);
    return toErrno(err, this.deps.log);
  }

  /**
   * A name under the root is a server of this mount's view or nothing (ENOENT), as `ls` shows:
   * a made-up name is not a server that cannot be reached (EHOSTDOWN). The view is local, so
   * this costs no request; a server in the view that does not answer still fails EHOSTDOWN.
   */
  knownServer(anchor: string, call: { origin: Origin }): Now<void> {
    if (depth(anchor) !== 1) return;
    const name = anchor.slice(1);
    const unknown = () => new CircuitError('ENOENT', `no server ${name} in this mount's view`);
    if (!/^X[0-9a-f]{16}$/.test(name)) throw unknown();
    return then(this.list('/', call), (servers) => {
      if (!servers.some((e) => e.name === name)) throw unknown();
    });
  }

  /** A failed mkdir or rmdir of an element is that element's last failure too (its `error` file). */
  noteElement<T>(n: Node, act: () => Promise<T>): Promise<T> {
    return act().catch((err) => {
      const e = toCircuitError(err);
      if (n.type === 'element') this.lastErrors.set(n.anchor, describe(e));
      throw e;
    });
  }

  /** An element must exist for its directory and files to; anything else is ENOENT. */
  ensureElement(n: { anchor: string; kind: string }, call = {}): Now<void> {
    return then(this.stat(n.anchor, call), (st) => {
      if (st.kind !== n.kind) throw new CircuitError('ENOENT', `no ${n.kind} at ${n.anchor}`);
    });
  }

  /** The client's stat and list, in the call itself where it can answer so (statNow, listNow). */
  stat(path: string, call: CallOptions): Now<{ kind: Kind | null; children: number }> {
    const c = this.client;
    return c.statNow ? c.statNow(path, call) : c.stat(path, call);
  }

  list(path: string, call: CallOptions): Now<Entry[]> {
    const c = this.client;
    return c.listNow ? c.listNow(path, call) : c.list(path, call);
  }

  /** What a file gets for an op that does not wait for its caller: open, release. */
  plainCtx(h: { anchor: string; kind: Kind }, caller: Caller | null): Ctx {
    return {
      client: this.client, anchor: h.anchor, kind: h.kind, call: { origin: this.origin(caller) },
      lastError: () => this.lastErrors.get(h.anchor) ?? '',
    };
  }

  /**
   * Runs one op on an open control file: with an abort signal, a watch on its caller when the
   * file blocks, and an early EINTR when a Client call ignores its abort for too long. done
   * gets the byte count (read, write) or 0, or a negative errno.
   */
  onHandle(op: string, path: string, fd: number, act: (h: Handle, ctx: Ctx) => Promise<number>, done: Reply) {
    const caller = this.deps.caller();
    const h = this.handles.get(fd);
    if (!h) return later(done, errno('EBADF'));
    if (this.closed) return later(done, errno('EIO'));
    const ctrl = new LazyAbort(); // a real AbortSignal only if something asks for one
    this.inFlight.add(ctrl);
    let replied = false;
    let graceTimer: NodeJS.Timeout | null = null;
    const reply = (code: number) => {
      if (replied) return;
      replied = true;
      unwatch();
      this.inFlight.delete(ctrl);
      if (graceTimer) clearTimeout(graceTimer);
      done(code);
    };
    ctrl.onAbort(() => {
      graceTimer = setTimeout(() => {
        this.deps.log(`fs: ${op} ${path}: the client did not honour an abort within ${this.grace} ms; answering anyway`);
        reply(toErrno(ctrl.reason));
      }, this.grace);
      graceTimer.unref();
    });
    const unwatch =
      h.spec.blocking && caller && caller.pid > 0
        ? this.watch.watch(caller.pid, () => ctrl.abort(E.interrupted()))
        : () => {};
    const ctx: Ctx = {
      client: this.client, anchor: h.anchor, kind: h.kind,
      call: lazyOptions(ctrl, this.origin(caller)),
      lastError: () => this.lastErrors.get(h.anchor) ?? '',
      // Asked just before an answer is handed over: a signal may have come since the watch's
      // last look, even for a call that did not wait (a routed read is a round trip long).
      interrupted: () => Boolean(h.spec.blocking && caller && caller.pid > 0 && interruptedNow(caller.pid)),
      progress: () => {
        const p = caller && caller.pid > 0 ? callerProgress(caller.pid) : null;
        return p && caller ? { pid: caller.pid, ...p } : null;
      },
      wrote: () => wroteBy(caller),
    };
    act(h, ctx).then(
      (n) => {
        if (replied) return;
        reply(n);
      },
      (err) => {
        if (replied) return;
        // An abort the Client reported in its own words is still an interrupt.
        reply(this.handleFailure(h, op, path, caller, ctrl.aborted ? ctrl.reason : err));
      },
    );
  }

  /** A failed op on an open file: the element's last failure (unless an interrupt), logged; its errno. */
  handleFailure(h: Handle, op: string, path: string, caller: Caller | null, err: unknown): number {
    const e = toCircuitError(err);
    if (e.code !== 'EINTR') this.lastErrors.set(h.anchor, describe(e));
    return this.failure(op, path, caller, e);
  }

  fileNode(path: string): Extract<Node, { type: 'file' }> {
    const n = this.resolve(path);
    if (n.type === 'file') return n;
    if (n.type === 'none') throw new CircuitError('ENOENT', `no such file: ${path}`);
    throw new CircuitError('EISDIR', `${path} is a directory`);
  }

  openHandle(path: string, flags: number, caller: Caller | null): number {
    const n = this.fileNode(path);
    const acc = flags & ACCMODE;
    const wantsWrite = acc === O_WRONLY || acc === O_RDWR;
    const wantsRead = acc !== O_WRONLY;
    if ((wantsWrite && !n.file.mode.includes('w')) || (wantsRead && !n.file.mode.includes('r'))) {
      throw new CircuitError('EACCES', `${path} is ${n.file.mode === 'r' ? 'read' : 'write'}-only`);
    }
    const file = n.file.open(flags, this.plainCtx(n, caller));
    return this.handles.add({ path, pid: caller?.pid ?? 0, fresh: true, anchor: n.anchor, kind: n.kind, spec: n.file, file }).fd;
  }

  /** Gives back what an open held (leases, writers); a file that holds nothing costs nothing. */
  async releaseHandle(h: Handle, path: string, caller: Caller | null) {
    if (!h.file.release) return;
    try {
      await h.file.release(this.plainCtx(h, caller));
    } catch (err) {
      this.lastErrors.set(h.anchor, describe(err));
      this.failure('release', path, caller, err);
    }
  }

  /** Answers every op in flight (EIO), releases every handle, refuses new element ops. */
  async shutdown() {
    this.closed = true;
    this.direct?.takeAll();
    const gone = new SystemError('EIO', 'the mount is going away');
    for (const ctrl of [...this.inFlight]) ctrl.abort(gone);
    this.watch.close();
    const { handles } = this;
    await Promise.all(handles.all().map((h) => (handles.delete(h.fd), this.releaseHandle(h, '(unmount)', null))));
  }
}

export function depth(anchor: string): number {
  return anchor.split('/').filter(Boolean).length;
}

/** The caller's pid and bytes written so far (Ctx.wrote); null when unknown. */
export function wroteBy(caller: Caller | null): { pid: number; wrote: number } | null {
  const wrote = caller && caller.pid > 0 ? callerWrote(caller.pid) : null;
  return wrote === null ? null : { pid: caller!.pid, wrote };
}

function who(c: Caller | null): string {
  return c ? ` (pid ${c.pid} uid ${c.uid})` : '';
}

/**
 * Replies once the op has returned, in the same turn of the event loop: FUSE callbacks never run
 * inside the op that received them, and an answer that waits for nothing does not wait for the
 * loop's next phase either.
 */
export function later<A extends unknown[]>(cb: (...a: A) => void, ...args: A): void {
  process.nextTick(() => cb(...args));
}
