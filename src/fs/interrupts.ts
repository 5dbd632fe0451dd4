import { readFile } from 'fs/promises';
import { closeSync, openSync, readFileSync, readSync } from 'fs';

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
  let status: string | null;
  try {
    status = readFileSync(`/proc/${pid}/status`, 'utf8');
  } catch {
    status = null;
  }
  return interrupted(status);
}

/** Whether a caller with this /proc/PID/status (null: gone) should get EINTR. */
export function interrupted(status: string | null): boolean {
  if (status === null) return true;
  const mask = (name: string): bigint => {
    const m = new RegExp(`^${name}:\\s*([0-9a-fA-F]+)`, 'm').exec(status);
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
 * sampled at every answer of a stream read, so made cheap: the file of the last few callers stays
 * open and is read again at offset 0 (the kernel renders it afresh), one pread instead of an open,
 * a read and a close. A task that is gone fails the pread (ESRCH), even when its pid was reused:
 * the file is then opened once more. Null when /proc does not tell.
 */
export function callerWrote(pid: number): number | null {
  for (let fresh = 0; fresh < 2; fresh++) {
    let fd = ioFiles.get(pid);
    if (fd === undefined) {
      try {
        fd = openSync(`/proc/${pid}/io`, 'r');
      } catch {
        return null;
      }
      if (ioFiles.size >= IO_FILES) {
        const [oldPid, oldFd] = ioFiles.entries().next().value as [number, number];
        ioFiles.delete(oldPid);
        closeQuietly(oldFd);
      }
      ioFiles.set(pid, fd);
    }
    try {
      const n = readSync(fd, ioScratch, 0, ioScratch.length, 0);
      const text = ioScratch.toString('latin1', 0, n);
      const i = text.indexOf('wchar:');
      if (i < 0) return null;
      const v = parseInt(text.slice(i + 6), 10);
      return Number.isFinite(v) ? v : null;
    } catch {
      ioFiles.delete(pid);
      closeQuietly(fd);
    }
  }
  return null;
}

/** Open /proc/PID/io files, by pid, oldest first: at most IO_FILES descriptors. */
const ioFiles = new Map<number, number>();
const IO_FILES = 8;
const ioScratch = Buffer.alloc(512);

function closeQuietly(fd: number): void {
  try {
    closeSync(fd);
  } catch {
    // already closed
  }
}
