import { readFile } from 'fs/promises';
import { openSync, readFileSync, readSync } from 'fs';
import { closeQuietly } from '../kit/fds';

/**
 * Notices callers that were interrupted while blocked in the mount. The kernel parks a FUSE
 * caller that gets a signal in uninterruptible sleep until the daemon answers, and libfuse 2's
 * high-level API does not pass the kernel's INTERRUPT on to us. So while any request is blocked,
 * every 50 ms we read each blocked caller's /proc/PID/status: when the caller is gone, or has a
 * pending signal (SigPnd, ShdPnd) it neither blocks (SigBlk) nor ignores (SigIgn), its request
 * is aborted and answered EINTR, as the kernel's own interrupt would. A task dying of a fatal
 * signal shows SIGKILL pending. The caller's pid comes from the patched fuse-native (mount.ts).
 */
export interface WatchOptions {
  intervalMs?: number;
  /** The text of /proc/PID/status, or null when the task is gone. */
  readStatus?: (pid: number) => Promise<string | null>;
}

interface Watched {
  pid: number;
  abort: () => void;
}

export class CallerWatch {
  readonly #interval: number;
  readonly #readStatus: (pid: number) => Promise<string | null>;
  readonly #watched = new Set<Watched>();
  #timer: NodeJS.Timeout | null = null;
  #closed = false;

  constructor(opts: WatchOptions = {}) {
    this.#interval = opts.intervalMs ?? 50;
    this.#readStatus = opts.readStatus ?? readProcStatus;
  }

  /** Watches pid until the returned function is called; abort runs at most once. */
  watch(pid: number, abort: () => void): () => void {
    let done = false;
    const w: Watched = {
      pid,
      abort: () => {
        if (done) return;
        done = true;
        this.#watched.delete(w);
        abort();
      },
    };
    this.#watched.add(w);
    this.#arm();
    return () => {
      done = true;
      this.#watched.delete(w);
    };
  }

  get size(): number {
    return this.#watched.size;
  }

  close(): void {
    this.#closed = true;
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = null;
    this.#watched.clear();
  }

  #arm() {
    if (this.#timer || this.#closed || this.#watched.size === 0) return;
    this.#timer = setTimeout(() => void this.#tick(), this.#interval);
  }

  async #tick() {
    const batch = [...this.#watched];
    await Promise.all(
      batch.map(async (w) => {
        const status = await this.#readStatus(w.pid);
        if (interrupted(status)) w.abort();
      }),
    );
    this.#timer = null;
    this.#arm();
  }
}

/**
 * Whether the caller is interrupted right now (a synchronous look at /proc/PID/status). Checked
 * once more before answering a blocked read with data: between two polls of the watch a signal
 * may have come, and a dying caller would take the bytes with it.
 */
export function interruptedNow(pid: number): boolean {
  return interrupted(procText(pid, 'status'));
}

const MASKS = Object.fromEntries(['SigPnd', 'ShdPnd', 'SigBlk', 'SigIgn'].map((n) => [n, new RegExp(`^${n}:\\s*([0-9a-fA-F]+)`, 'm')]));

/** Whether a caller with this /proc/PID/status (null: gone) should get EINTR. */
export function interrupted(status: string | null): boolean {
  if (status === null) return true;
  const mask = (name: string): bigint => {
    const m = MASKS[name]!.exec(status);
    return m ? BigInt('0x' + m[1]) : 0n;
  };
  const state = /^State:\s*(\S)/m.exec(status)?.[1];
  if (state === 'Z' || state === 'X') return true;
  const pending = mask('SigPnd') | mask('ShdPnd');
  return (pending & ~mask('SigBlk') & ~mask('SigIgn')) !== 0n;
}

async function readProcStatus(pid: number): Promise<string | null> {
  try {
    return await readFile(`/proc/${pid}/status`, 'utf8');
  } catch {
    return null;
  }
}

/**
 * What /proc shows of a caller's progress: the bytes it has written so far (`wchar` of
 * /proc/PID/io) and whether it is exiting because of a signal (/proc/PID/stat: PF_EXITING in its
 * flags, a signal in its exit code). A stream file uses it to tell, when a reader closes it while
 * dying, whether the reader wrote anything after its last read: if not, that read never left the
 * reader and its bytes go back to the stream. Null when /proc does not tell (gone, not ours).
 */
export function callerProgress(pid: number): { wrote: number; dying: boolean } | null {
  try {
    const io = readFileSync(`/proc/${pid}/io`, 'utf8');
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const wrote = /^wchar:\s*(\d+)/m.exec(io);
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    if (!wrote || f.length < 50) return null;
    const flags = Number(f[6]);
    const exitCode = Number(f[49]);
    return { wrote: Number(wrote[1]), dying: (flags & PF_EXITING) !== 0 && (exitCode & 0x7f) !== 0 };
  } catch {
    return null;
  }
}

const PF_EXITING = 0x4;

/**
 * The bytes a caller has written so far (`wchar` of /proc/PID/io), as callerProgress has it but
 * sampled at every answer of a stream read, so made cheap (procText). Null when /proc does not tell.
 */
export function callerWrote(pid: number): number | null {
  const text = procText(pid, 'io');
  const i = text === null ? -1 : text.indexOf('wchar:');
  if (i < 0) return null;
  const v = parseInt(text!.slice(i + 6), 10);
  return Number.isFinite(v) ? v : null;
}

/**
 * /proc/PID/NAME of a recent caller, read on every answer of a stream, so made cheap: the files
 * of the last few callers stay open and are read again at offset 0 (the kernel renders them
 * afresh), one pread instead of an open, a read and a close. A task that is gone fails the pread
 * (ESRCH), even when its pid was reused: the file is then opened once more. Null when there is
 * no such task.
 */
function procText(pid: number, name: 'io' | 'status'): string | null {
  const files = procFiles[name];
  for (let fresh = 0; fresh < 2; fresh++) {
    let fd = files.get(pid);
    if (fd === undefined) {
      try {
        fd = openSync(`/proc/${pid}/${name}`, 'r');
      } catch {
        return null;
      }
      if (files.size >= PROC_FILES) {
        const [oldPid, oldFd] = files.entries().next().value as [number, number];
        files.delete(oldPid);
        closeQuietly(oldFd);
      }
      files.set(pid, fd);
    }
    try {
      const n = readSync(fd, procScratch, 0, procScratch.length, 0);
      return procScratch.toString('latin1', 0, n);
    } catch {
      files.delete(pid);
      closeQuietly(fd);
    }
  }
  return null;
}

/** Open /proc files, by pid, oldest first: at most PROC_FILES descriptors of each name. */
const procFiles = { io: new Map<number, number>(), status: new Map<number, number>() };
const PROC_FILES = 8;
const procScratch = Buffer.alloc(8192);

