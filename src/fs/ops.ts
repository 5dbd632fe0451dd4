import { constants } from 'fs';
import type { Ops, Stat } from 'fuse-native';
import type { Client, Origin } from '../api/types';
import { CircuitError, E, SystemError, toCircuitError } from '../kit/errors';
import { describe, errno, toErrno } from './errno';
import type { Ctx } from './files/control';
import { type Handle, Handles } from './handles';
import { CallerWatch, callerProgress, interruptedNow } from './interrupts';
import { type Node, ROUTES, type Routes } from './routes';

/**
 * The FUSE ops: a thin adapter. Every op logs, resolves its path through the table (routes.ts),
 * acts on the Client, and replies, always asynchronously and after copying any buffer FUSE
 * lends. Blocking ops run under an AbortController that fires when their caller is interrupted
 * (interrupts.ts) or the mount goes away.
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
}

export interface FsOps {
  ops: Ops;
  handles: Handles;
  /** Answers every op in flight (EIO), releases every handle, refuses new element ops. */
  shutdown(): Promise<void>;
}

type Reply = (code: number) => void;

const { O_WRONLY, O_RDWR } = constants;
const ACCMODE = 3; // O_ACCMODE
const DIR = 0o040755;
const LINK = 0o120777;
const FILE_MODE = { r: 0o100444, w: 0o100222, rw: 0o100666 } as const;

export function createOps(deps: OpsDeps): FsOps {
  const { client } = deps;
  const routes = deps.routes ?? ROUTES;
  const resolve = (path: string) => routes.resolve(path);
  const handles = new Handles();
  const watch = deps.watch ?? new CallerWatch();
  const grace = deps.abortGraceMs ?? 1000;
  const lastErrors = new Map<string, string>();
  const inFlight = new Set<AbortController>();
  const started = new Date();
  let closed = false;

  const origin = (c: Caller | null): Origin => ({ via: 'mount', ...(c ? { pid: c.pid, uid: c.uid } : {}) });

  const attr = (mode: number): Stat => ({
    mode, uid: deps.uid, gid: deps.gid, size: 0, nlink: mode === DIR ? 2 : 1,
    mtime: started, atime: started, ctime: started,
  });

  /**
   * Runs act and replies with its result or its errno. Failures are logged; successes are not
   * (the server's operations log records every operation with its caller).
   */
  function answer<T>(op: string, path: string, caller: Caller | null, act: () => Promise<T>, reply: (err: number, v?: T) => void, quiet = false) {
    act().then(
      (v) => reply(0, v),
      (err) => {
        // A lookup of a name that is not there is routine, not worth a log line.
        if (quiet && err instanceof CircuitError && err.code === 'ENOENT') return reply(toErrno(err));
        reply(failure(op, path, caller, err));
      },
    );
  }

  function failure(op: string, path: string, caller: Caller | null, err: unknown): number {
    deps.log(`fs: ${op} ${path}${who(caller)}: ${describe(err)}`);
    return toErrno(err, deps.log);
  }

  /**
   * A name under the root is a server of this mount's view or nothing (ENOENT), as `ls` shows:
   * a made-up name is not a server that cannot be reached (EHOSTDOWN). The view is local, so
   * this costs no request; a server in the view that does not answer still fails EHOSTDOWN.
   */
  async function knownServer(anchor: string, call: { origin: Origin }) {
    if (depth(anchor) !== 1) return;
    const name = anchor.slice(1);
    if (!/^X[0-9a-f]{16}$/.test(name) || !(await client.list('/', call)).some((e) => e.name === name)) {
      throw new CircuitError('ENOENT', `no server ${name} in this mount's view`);
    }
  }

  /** A failed mkdir or rmdir of an element is that element's last failure too (its `error` file). */
  function noteElement<T>(n: Node, act: () => Promise<T>): Promise<T> {
    return act().catch((err) => {
      const e = toCircuitError(err);
      if (n.type === 'element') lastErrors.set(n.anchor, describe(e));
      throw e;
    });
  }

  /** An element must exist for its directory and files to; anything else is ENOENT. */
  async function ensureElement(n: { anchor: string; kind: string }, call = {}) {
    const st = await client.stat(n.anchor, call);
    if (st.kind !== n.kind) throw new CircuitError('ENOENT', `no ${n.kind} at ${n.anchor}`);
  }

  /**
   * Runs one op on an open control file: with an abort signal, a watch on its caller when the
   * file blocks, and an early EINTR when a Client call ignores its abort for too long. done
   * gets the byte count (read, write) or 0, or a negative errno.
   */
  function onHandle(op: string, path: string, fd: number, act: (h: Handle, ctx: Ctx) => Promise<number>, done: Reply) {
    const caller = deps.caller();
    const h = handles.get(fd);
    if (!h) return later(done, errno('EBADF'));
    if (closed) return later(done, errno('EIO'));
    const ctrl = new AbortController();
    inFlight.add(ctrl);
    let replied = false;
    let graceTimer: NodeJS.Timeout | null = null;
    const reply = (code: number) => {
      if (replied) return;
      replied = true;
      unwatch();
      inFlight.delete(ctrl);
      if (graceTimer) clearTimeout(graceTimer);
      done(code);
    };
    ctrl.signal.addEventListener('abort', () => {
      graceTimer = setTimeout(() => {
        deps.log(`fs: ${op} ${path}: the client did not honour an abort within ${grace} ms; answering anyway`);
        reply(toErrno(ctrl.signal.reason));
      }, grace);
      graceTimer.unref();
    });
    const unwatch =
      h.spec.blocking && caller && caller.pid > 0
        ? watch.watch(caller.pid, () => ctrl.abort(E.interrupted()))
        : () => {};
    const ctx: Ctx = {
      client, anchor: h.anchor, kind: h.kind,
      call: { signal: ctrl.signal, origin: origin(caller) },
      lastError: () => lastErrors.get(h.anchor) ?? '',
      // Asked just before an answer is handed over: a signal may have come since the watch's
      // last look, even for a call that did not wait (a routed read is a round trip long).
      interrupted: () => Boolean(h.spec.blocking && caller && caller.pid > 0 && interruptedNow(caller.pid)),
      progress: () => {
        const p = caller && caller.pid > 0 ? callerProgress(caller.pid) : null;
        return p && caller ? { pid: caller.pid, ...p } : null;
      },
    };
    act(h, ctx).then(
      (n) => {
        if (replied) return;
        reply(n);
      },
      (err) => {
        if (replied) return;
        // An abort the Client reported in its own words is still an interrupt.
        const e = ctrl.signal.aborted ? toCircuitError(ctrl.signal.reason) : toCircuitError(err);
        if (e.code !== 'EINTR') lastErrors.set(h.anchor, describe(e));
        reply(failure(op, path, caller, e));
      },
    );
  }

  function fileNode(path: string): Extract<Node, { type: 'file' }> {
    const n = resolve(path);
    if (n.type === 'file') return n;
    if (n.type === 'none') throw new CircuitError('ENOENT', `no such file: ${path}`);
    throw new CircuitError('EISDIR', `${path} is a directory`);
  }

  function openHandle(path: string, flags: number, caller: Caller | null): number {
    const n = fileNode(path);
    const acc = flags & ACCMODE;
    const wantsWrite = acc === O_WRONLY || acc === O_RDWR;
    const wantsRead = acc !== O_WRONLY;
    if ((wantsWrite && !n.file.mode.includes('w')) || (wantsRead && !n.file.mode.includes('r'))) {
      throw new CircuitError('EACCES', `${path} is ${n.file.mode === 'r' ? 'read' : 'write'}-only`);
    }
    const file = n.file.open(flags);
    return handles.add({ path, pid: caller?.pid ?? 0, fresh: true, anchor: n.anchor, kind: n.kind, spec: n.file, file }).fd;
  }

  const ops: Ops = {
    init: (cb) => later(cb, 0),

    getattr(path, cb) {
      const caller = deps.caller();
      answer('getattr', path, caller, async () => {
        const n = resolve(path);
        const call = { origin: origin(caller) };
        switch (n.type) {
          case 'root': return attr(DIR);
          case 'self': return attr(LINK);
          case 'anchor': await knownServer(n.anchor, call); await client.stat(n.anchor, call); return attr(DIR);
          case 'element': await ensureElement(n, call); return attr(DIR);
          case 'file': if (n.anchor !== '/') await ensureElement(n, call); return attr(FILE_MODE[n.file.mode]);
          case 'none': throw new CircuitError('ENOENT', `no such file: ${path}`);
        }
      }, cb, true);
    },

    readdir(path, cb) {
      const caller = deps.caller();
      answer('readdir', path, caller, async () => {
        const n = resolve(path);
        const call = { origin: origin(caller) };
        const names = ['.', '..'];
        if (n.type === 'root') {
          names.push(...(await client.list('/', call)).map((e) => e.name));
        } else if (n.type === 'anchor') {
          const [entries, st] = await Promise.all([client.list(n.anchor, call), client.stat(n.anchor, call)]);
          if (st.kind) names.push(st.kind);
          names.push(...entries.map((e) => e.name));
        } else if (n.type === 'element') {
          await ensureElement(n, call);
          names.push(...routes.filesOf(n.kind).map((f) => f.name));
        } else {
          throw new CircuitError(n.type === 'none' ? 'ENOENT' : 'ENOTDIR', `not a directory: ${path}`);
        }
        return names;
      }, (err, names) => cb(err, names), true);
    },

    readlink(path, cb) {
      answer('readlink', path, deps.caller(), async () => {
        if (resolve(path).type !== 'self') throw new CircuitError('EINVAL', `not a symlink: ${path}`);
        return (await client.home()).id;
      }, cb, true);
    },

    mkdir(path, _mode, cb) {
      const caller = deps.caller();
      answer('mkdir', path, caller, async () => {
        const n = resolve(path);
        const call = { origin: origin(caller) };
        if (n.type === 'anchor' && depth(n.anchor) > 1) return client.hold(n.anchor, call);
        if (n.type === 'element' && n.kind !== 'server') {
          // null: the kind's default (its module's defaultSpec), an idle or empty element.
          return noteElement(n, () => client.make(n.anchor, n.kind, null, call));
        }
        if (n.type === 'anchor' || n.type === 'element') throw E.outsideServers();
        throw new CircuitError(n.type === 'none' ? 'EPERM' : 'EEXIST', `cannot make ${path}`);
      }, cb);
    },

    rmdir(path, cb) {
      const caller = deps.caller();
      answer('rmdir', path, caller, async () => {
        const n = resolve(path);
        const call = { origin: origin(caller) };
        if (n.type === 'anchor' && depth(n.anchor) > 1) return client.unhold(n.anchor, call);
        if (n.type === 'element' && n.kind !== 'server') {
          await ensureElement(n, call);
          return noteElement(n, () => client.scrub(n.anchor, call));
        }
        if (n.type === 'file') throw new CircuitError('ENOTDIR', `not a directory: ${path}`);
        throw new CircuitError('EPERM', `cannot remove ${path}`);
      }, cb);
    },

    open(path, flags, cb) {
      const caller = deps.caller();
      answer('open', path, caller, async () => openHandle(path, flags, caller), cb, true);
    },

    create(path, _mode, cb) {
      // Only reached when lookup found no such file: control files cannot be created.
      answer('create', path, deps.caller(), async () => {
        throw new CircuitError(resolve(path).type === 'file' ? 'ENOENT' : 'EPERM', `cannot create ${path}`);
      }, cb);
    },

    read(path, fd, buf, len, pos, cb) {
      // An answer already rendered (the second read of a snapshot, the EOF read) needs no watch,
      // abort signal or promise: it is copied and answered at once.
      const ready = closed ? undefined : handles.get(fd)?.file.readNow?.(len, pos);
      if (ready) return process.nextTick(cb, ready.copy(buf, 0, 0, Math.min(len, ready.length)));
      onHandle('read', path, fd, async (h, ctx) => {
        if (!h.file.read) throw new CircuitError('EBADF', `${path} is not readable`);
        const data = await h.file.read(len, pos, ctx);
        return data.copy(buf, 0, 0, Math.min(len, data.length));
      }, cb);
    },

    write(path, fd, buf, len, _pos, cb) {
      const data = Buffer.from(buf.subarray(0, len)); // FUSE reuses buf once we return
      const fresh = handles.get(fd);
      if (fresh) fresh.fresh = false;
      onHandle('write', path, fd, async (h, ctx) => {
        if (!h.file.write) throw new CircuitError('EBADF', `${path} is not writable`);
        await h.file.write(data, ctx);
        return data.length;
      }, cb);
    },

    flush(path, fd, cb) {
      const h = closed ? undefined : handles.get(fd);
      if (h && !h.file.flush) return process.nextTick(cb, 0); // nothing to judge: answered at once
      onHandle('flush', path, fd, async (h, ctx) => {
        await h.file.flush?.(ctx);
        return 0;
      }, cb);
    },

    release(path, fd, cb) {
      const h = handles.delete(fd);
      later(cb, 0); // nobody waits for release; give back leases in the background
      if (h) void releaseHandle(h, path, deps.caller());
    },

    truncate(path, size, cb) {
      // open(O_TRUNC) reaches us as open, then truncate by path (the kernel drops the handle
      // for it): it belongs to the fresh handles the same caller just opened at that path.
      const caller = deps.caller();
      answer('truncate', path, caller, async () => {
        fileNode(path);
        for (const h of handles.all()) {
          if (h.path === path && h.fresh && (!caller || h.pid === caller.pid)) h.file.truncate?.(size);
        }
      }, cb, true);
    },
    ftruncate(path, fd, size, cb) {
      const h = handles.get(fd);
      if (h?.fresh) h.file.truncate?.(size);
      later(cb, 0);
    },
    utimens: (_path, _a, _m, cb) => later(cb, 0),
    access(path, mode, cb) {
      answer('access', path, null, async () => {
        const n = resolve(path);
        if (n.type !== 'file') return;
        if ((mode & 2 && !n.file.mode.includes('w')) || (mode & 4 && !n.file.mode.includes('r')) || mode & 1) {
          throw new CircuitError('EACCES', `${path}: permission denied`);
        }
      }, cb, true);
    },
    getxattr: (_path, _name, _pos, cb) => later(() => cb(0, null)),
    listxattr: (_path, cb) => later(() => cb(0, [])),
    chmod: (path, _m, cb) => later(cb, errno('EPERM')),
    chown: (path, _u, _g, cb) => later(cb, errno('EPERM')),
    unlink: (_path, cb) => later(cb, errno('EPERM')),
    rename: (_s, _d, cb) => later(cb, errno('EPERM')),
    link: (_s, _d, cb) => later(cb, errno('EPERM')),
    symlink: (_s, _d, cb) => later(cb, errno('EPERM')),
    mknod: (_p, _m, _d, cb) => later(cb, errno('EPERM')),
  };

  async function releaseHandle(h: Handle, path: string, caller: Caller | null) {
    const ctx: Ctx = {
      client, anchor: h.anchor, kind: h.kind, call: { origin: origin(caller) },
      lastError: () => lastErrors.get(h.anchor) ?? '',
    };
    try {
      await h.file.release?.(ctx);
    } catch (err) {
      lastErrors.set(h.anchor, describe(err));
      failure('release', path, caller, err);
    }
  }

  async function shutdown() {
    closed = true;
    const gone = new SystemError('EIO', 'the mount is going away');
    for (const ctrl of [...inFlight]) ctrl.abort(gone);
    watch.close();
    await Promise.all(handles.all().map((h) => (handles.delete(h.fd), releaseHandle(h, '(unmount)', null))));
  }

  return { ops, handles, shutdown };
}

function depth(anchor: string): number {
  return anchor.split('/').filter(Boolean).length;
}

function who(c: Caller | null): string {
  return c ? ` (pid ${c.pid} uid ${c.uid})` : '';
}

/**
 * Replies once the op has returned, in the same turn of the event loop: FUSE callbacks never run
 * inside the op that received them, and an answer that waits for nothing does not wait for the
 * loop's next phase either.
 */
function later<A extends unknown[]>(cb: (...a: A) => void, ...args: A): void {
  process.nextTick(() => cb(...args));
}
