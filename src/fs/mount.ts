import { execFile } from 'child_process';
import { mkdir, stat } from 'fs/promises';
import os = require('os');
import { dirname, resolve as resolvePath } from 'path';
import Fuse, { type FuseOpts, type Ops } from 'fuse-native';
import type { Client } from '../api/types';
import type { Routes } from './routes';
import { AppError, CircuitError, SystemError } from '../kit/errors';
import { ANSWER_SLOT } from './handles';
import { type Binding, type Handler, leanHandlers } from './dispatch';
import { CallerWatch } from './interrupts';
import { type Caller, createOps } from './ops';
import type { DirectBinding } from './ops/direct';
import { guard, type Refusal } from './policy';

/**
 * The mount's lifecycle on fuse-native: make the mount point, clean up a dead mount left by a
 * crashed daemon, mount with direct_io (control files are never page-cached), and on unmount
 * answer every blocked caller before detaching so nobody hangs.
 */
export interface Mount {
  readonly dir: string;
  unmount(): Promise<void>;
}

export interface MountOptions {
  /**
   * Let other users reach the mount, to look, not act (policy.ts): needs the patched fuse-native,
   * which reports callers. Users and groups in allowUids/allowGids may act too.
   */
  allowOther?: boolean;
  allowUids?: number[];
  allowGids?: number[];
  /** Called for each act refused to another user (the daemon writes it to ops.log). */
  refused?: (r: Refusal) => void;
  log?: (line: string) => void;
  /** The mount's shape (default: the registered kinds' file tables, src/fs/kinds/index.ts). */
  routes?: Routes;
}

// fuse-native's native binding, for the caller function our patch adds.
// eslint-disable-next-line @typescript-eslint/no-var-requires
const binding = require('node-gyp-build')(dirname(require.resolve('fuse-native/package.json'))) as Binding & {
  fuse_native_caller?: (nativeHandler: Buffer) => [number, number, number];
  fuse_native_caller_at?: () => number;
  fuse_native_attrs_put?: (thread: Buffer, path: string, ints: Uint32Array, ttlMs: number) => void;
  fuse_native_attrs_clear?: (thread: Buffer) => void;
  fuse_native_noflush?: (thread: Buffer, table: Buffer) => void;
  fuse_native_answers?: (thread: Buffer, table: Buffer, slotSize: number) => void;
  fuse_native_pooled_io?: (thread: Buffer, on: number) => void;
  fuse_native_direct_lend?: (thread: Buffer, fh: number, pipe: number, io: number, pid: number, ackFd: number, ackAt: number) => boolean;
  fuse_native_direct_take?: (thread: Buffer, fh: number, into: Buffer) => [number, number, number] | undefined;
  /** [whether answers from a lent pipe go to FUSE by splice, how many did in this process] */
  fuse_native_direct_spliced?: () => [boolean, number];
  fuse_native_release_notes?: (thread: Buffer, notes: (q: Uint32Array) => void) => void;
};

/**
 * fuse-native with what it lacks a flag for: direct_io, big_writes, no dentry or attribute
 * caching, and, when the patched
 * build is there, the caller of each op, set on the instance just before the op runs.
 */
class CircuitFuse extends Fuse {
  caller: Caller | null = null;

  /** Notes the caller of the op about to run. */
  #setCaller(pid: number, uid: number, gid: number): void {
    const last = this.caller;
    // the same caller again (a busy process): the same object, nothing changes one once made
    if (last?.pid !== pid || last.uid !== uid || last.gid !== gid) this.caller = { pid, uid, gid };
  }

  /**
   * Called by fuse-native's constructor: its handlers, with ours for the busy ops (dispatch.ts),
   * each first noting the request's caller when the patched build reports it.
   */
  protected override _makeHandlerArray(): Handler[] {
    const callerOf = binding.fuse_native_caller;
    // Where the patched build keeps them in a request's handle (a Buffer over the FUSE thread's
    // locals), read there in host byte order without a call into the binding.
    const at = os.endianness() === 'LE' ? binding.fuse_native_caller_at?.() : undefined;
    const before = callerOf && ((h: Buffer) => {
      let pid, uid, gid;
      if (at === undefined) [pid, uid, gid] = callerOf(h);
      else {
        pid = h.readUInt32LE(at);
        uid = h.readUInt32LE(at + 4);
        gid = h.readUInt32LE(at + 8);
      }
      this.#setCaller(pid, uid, gid);
    });
    // Control files' attributes never change while their element lives; the binding answers their
    // getattr itself for as long as the kernel caches attributes (attr_timeout), forgetting them
    // all when a path is removed or renamed through the mount (another mount or the CLI removing
    // an element shows within that time, as for the kernel's cache).
    const put = binding.fuse_native_attrs_put;
    const clear = binding.fuse_native_attrs_clear;
    const hooks = {
      before,
      remember: put && ((path: string, ints: Uint32Array) => this._thread && put(this._thread, path, ints, ATTR_TIMEOUT_MS)),
      changed: clear && (() => this._thread && clear(this._thread)),
    };
    return leanHandlers(binding, this.ops, super._makeHandlerArray(), (name) => timeoutOf(this.timeout, name), hooks);
  }

  /**
   * Shares the table of opens with nothing to do at close (handles.ts) with the patched binding,
   * which then answers their flush itself; until then (or unpatched) JavaScript answers it.
   */
  shareNoFlush(table: Int32Array): void {
    if (this._thread) binding.fuse_native_noflush?.(this._thread, bytesOf(table));
  }

  /** Reads into our own buffers, writes as copies: no external buffer per request (dispatch.ts). */
  poolIo(): void {
    if (this._thread) binding.fuse_native_pooled_io?.(this._thread, 1);
  }

  /** The binding's lending of pipes to the FUSE thread (fuse-native-direct.patch), if it has it. */
  direct(): DirectBinding | undefined {
    const thread = this._thread;
    const lend = binding.fuse_native_direct_lend;
    const take = binding.fuse_native_direct_take;
    if (!thread || !lend || !take || process.env.CIRCUIT_NO_DIRECT === '1') return undefined;
    return { lend: (fh, pipe, io, pid, ackFd, ackAt) => lend(thread, fh, pipe, io, pid, ackFd, ackAt), take: (fh, into) => take(thread, fh, into) };
  }

  /**
   * Lets the binding answer every release itself (fuse-native-release.patch: the kernel waits for
   * none and ignores the answer) and tell us after, in order, before any later op: each note is
   * released here as fuse-native would have, with its caller. `CIRCUIT_NO_RELEASE_NOTES=1` turns
   * it off.
   */
  noteReleases(): void {
    const notes = binding.fuse_native_release_notes;
    const release = this.ops.release?.bind(this.ops);
    if (!this._thread || !notes || !release || process.env.CIRCUIT_NO_RELEASE_NOTES === '1') return;
    const answered = () => {};
    notes(this._thread, (q) => {
      for (let i = 0; i + 3 < q.length; i += 4) {
        this.#setCaller(q[i + 1]!, q[i + 2]!, q[i + 3]!);
        release('', q[i]!, answered);
      }
    });
  }

  /** Shares the table of whole answers (handles.ts), whose reads the patched binding then answers. */
  shareAnswers(table: Int32Array): void {
    if (this._thread) binding.fuse_native_answers?.(this._thread, bytesOf(table), ANSWER_SLOT);
  }

  protected override _fuseOptions(): string {
    const base = super._fuseOptions();
    // Entries and attributes are cached for 0.1 s only, and "not found" not at all: the tree
    // changes under the mount (the CLI, other mounts, a process scrubbed when it exits), so a
    // removal elsewhere shows here within 0.1 s and a creation at once. Not caching at all
    // (0 s) tripled the cost of opening a control file five levels down: every open then asked
    // the daemon about every path component (BENCHMARKS.md #1).
    const t = ATTR_TIMEOUT_MS / 1000;
    return (base ? `${base},` : '-o') + `direct_io,big_writes,atomic_o_trunc,entry_timeout=${t},attr_timeout=${t},negative_timeout=0`;
  }
}

/** An op's timeout in ms (0: none) from fuse-native's `timeout` option, as fuse-native reads it. */
function timeoutOf(t: FuseOpts['timeout'], name: string): number {
  if (typeof t !== 'object' || !t) return t || 0;
  const v = t[name];
  return v === false ? 0 : v || t.default || DEFAULT_OP_TIMEOUT;
}

/** fuse-native's timeout for an op its `timeout` option does not name (15 s). */
const DEFAULT_OP_TIMEOUT = 15_000;

/** How long the kernel caches entries and attributes, and the binding control files' attributes. */
const ATTR_TIMEOUT_MS = 100;

/** Slots of the no-flush table (handles.ts): 16 KiB, one per open file up to that many at once. */
const NO_FLUSH_SLOTS = 4096;

/** Slots of the answers table (handles.ts): 512 KiB, whatever the number of open files. */
const ANSWER_SLOTS = 1024;

const bytesOf = (t: Int32Array) => Buffer.from(t.buffer, t.byteOffset, t.byteLength);

/** Whether this fuse-native build reports callers (scripts/patch-fuse-native.sh). */
export const reportsCallers = typeof binding.fuse_native_caller === 'function';

export async function mount(client: Client, dir: string, opts: MountOptions = {}): Promise<Mount> {
  const log = opts.log ?? (() => {});
  if (opts.allowOther && !reportsCallers) {
    throw new AppError('ENOTSUP', '--allow-other needs the patched fuse-native, which tells the mount who calls (run scripts/patch-fuse-native.sh); without it other users could act, not only look');
  }
  const mnt = resolvePath(dir);
  await prepare(mnt, log);
  if (!reportsCallers) {
    log('fs: fuse-native is not patched (scripts/patch-fuse-native.sh): interrupted callers wait for their answer');
  }

  let fuse: CircuitFuse | null = null;
  const watch = new CallerWatch();
  const noFlush = binding.fuse_native_noflush ? new Int32Array(NO_FLUSH_SLOTS) : undefined;
  const answers = binding.fuse_native_answers ? new Int32Array((ANSWER_SLOTS * ANSWER_SLOT) / 4) : undefined;
  const fsops = createOps({
    client,
    caller: () => fuse?.caller ?? null,
    log,
    uid: process.getuid?.() ?? 0,
    gid: process.getgid?.() ?? 0,
    watch,
    routes: opts.routes,
    noFlush,
    answers,
  });
  const owner = process.getuid?.() ?? 0;
  const ops = opts.allowOther
    ? guard(fsops.ops, { owner, uids: new Set(opts.allowUids), gids: new Set(opts.allowGids) }, () => fuse?.caller ?? null, (r) => {
        if (opts.refused) opts.refused(r);
        else log(`fs: refused ${r.op} ${JSON.stringify(r.path)}: ${r.message}`);
      })
    : fsops.ops;
  fuse = new CircuitFuse(mnt, ops, {
    // Blocking files wait as long as they must (interrupts end them, not a timer); fuse-native's
    // op timeout only applies per op name, so it is lifted for the ops that carry their I/O.
    timeout: { default: 15_000, read: false, write: false, flush: false, release: false },
    allowOther: !!opts.allowOther,
    fsname: 'circuit',
  });
  const f = fuse;
  await new Promise<void>((res, rej) => f.mount((err) => (err ? rej(err) : res()))).catch((err) => {
    throw new SystemError('EIO', `cannot mount ${mnt}: ${(err as Error).message}`, { cause: err });
  });
  if (noFlush) f.shareNoFlush(noFlush);
  if (answers) f.shareAnswers(answers);
  f.poolIo();
  f.noteReleases();
  const direct = f.direct();
  if (direct) fsops.readDirect(direct);
  log(`fs: mounted ${mnt}`);

  let unmounting: Promise<void> | null = null;
  return {
    dir: mnt,
    unmount() {
      unmounting ??= (async () => {
        await fsops.shutdown();
        await new Promise<void>((res) => f.unmount((err) => {
          if (err) log(`fs: unmount ${mnt}: ${err.message}`);
          res();
        }));
        log(`fs: unmounted ${mnt}`);
      })();
      return unmounting;
    },
  };
}

/** Makes dir if missing; refuses a live mount; lazily unmounts a dead one. */
async function prepare(mnt: string, log: (line: string) => void): Promise<void> {
  try {
    const [st, parent] = await Promise.all([stat(mnt), stat(dirname(mnt))]);
    if (!st.isDirectory()) throw new AppError('ENOTDIR', `${mnt} is not a directory`);
    if (st.dev !== parent.dev) throw new AppError('EBUSY', `${mnt} is already mounted`);
  } catch (err) {
    if (err instanceof CircuitError) throw err;
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') {
      await mkdir(mnt, { recursive: true });
    } else if (code === 'ENOTCONN') {
      log(`fs: ${mnt} is a dead mount; unmounting it`);
      await fusermountLazy(mnt);
    } else {
      throw new SystemError('EIO', `cannot use ${mnt} as a mount point: ${(err as Error).message}`, { cause: err });
    }
  }
}

function fusermountLazy(mnt: string): Promise<void> {
  return new Promise((res, rej) =>
    execFile('fusermount', ['-uz', mnt], (err, _out, stderr) =>
      err ? rej(new SystemError('EIO', `fusermount -uz ${mnt}: ${stderr.trim() || err.message}`)) : res(),
    ),
  );
}
