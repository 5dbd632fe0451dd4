import { closeSync, openSync } from 'fs';
import type { OpenFile } from '../files/control';
import type { Caller } from './context';

/**
 * Reads of a process's output answered on the FUSE thread, straight from the child's pipe, while
 * nothing of the stream is buffered (docs/fs.md, "Reading output at the pipe"). After a read of a
 * stream answered from the buffer, the mount offers the open file: if its producer can lend the
 * pipe now (the output pump holds nothing of it), the patched binding (fuse-native-direct.patch)
 * gets the pipe, the reader's pid and a descriptor of its /proc/PID/io, and answers that open
 * file's next reads itself, keeping a copy of the last answer and the reader's write count when it
 * got it. A read it cannot answer (the pipe empty for a while, its end, another process) comes to
 * JavaScript, which, like every other op of that open file (flush, release), first takes the pipe
 * back: the bytes read count as delivered, the last answer stays the stream's until the reader
 * comes back for more, exactly as for reads JavaScript answers.
 */
export interface DirectBinding {
  /** ackFd -1: a pipe; else the socket the FUSE thread writes its acknowledgements to, from offset ackAt on. */
  lend(fh: number, pipe: number, io: number, pid: number, ackFd: number, ackAt: number): boolean;
  take(fh: number, into: Buffer): [number, number, number] | undefined;
}

/** The largest answer the binding keeps a copy of: a FUSE read's largest (128 KiB). */
const KEEP = 128 * 1024;
const EMPTY = Buffer.alloc(0);

export class DirectReads {
  readonly #lent = new Map<number, { io: number; pid: number; file: OpenFile }>();
  readonly #keep = Buffer.allocUnsafeSlow(KEEP);

  constructor(private readonly binding: DirectBinding) {}

  /** After a read of fh answered from the buffer: lends the pipe if the file can now. */
  offer(fh: number, file: OpenFile, caller: Caller | null): void {
    if (!file.lend || !file.reclaim || !caller || caller.pid <= 0 || this.#lent.has(fh)) return;
    // Most offers find bytes still buffered: the caller's /proc file is opened only for a lend.
    const lent = file.lend(() => this.take(fh));
    if (lent === undefined) return;
    // a pipe, or a data connection the FUSE thread also writes its acknowledgements to
    const [pipe, ackFd, ackAt] = typeof lent === 'number' ? [lent, -1, 0] : [lent.fd, lent.fd, lent.ackAt];
    let io: number | undefined;
    try {
      io = openSync(`/proc/${caller.pid}/io`, 'r');
    } catch {
      // gone already, or not ours to look at: JavaScript goes on answering
    }
    if (io !== undefined && this.binding.lend(fh, pipe, io, caller.pid, ackFd, ackAt)) {
      this.#lent.set(fh, { io, pid: caller.pid, file });
      return;
    }
    if (io !== undefined) closeSync(io);
    file.reclaim(0, EMPTY, null);
  }

  /** Before any other op of fh: what the FUSE thread read is folded back into the stream. */
  take(fh: number): void {
    const e = this.#lent.get(fh);
    if (!e) return;
    this.#lent.delete(fh);
    const [count, kept, wrote] = this.binding.take(fh, this.#keep) ?? [0, 0, 0];
    closeSync(e.io);
    e.file.reclaim!(count, count > 0 ? Buffer.from(this.#keep.subarray(0, kept)) : EMPTY, count > 0 ? { pid: e.pid, wrote } : null);
  }

  /** Takes every pipe back (the mount goes away). */
  takeAll(): void {
    for (const fh of [...this.#lent.keys()]) this.take(fh);
  }
}
