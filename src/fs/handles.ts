import type { Kind } from '../api/types';
import type { FileSpec, OpenFile } from './files/control';

/** One open control file: what read, write, flush and release find by the fd FUSE hands back. */
export interface Handle {
  fd: number;
  /** The mount path it was opened at, and by whom: a `>` truncation finds its handle by them. */
  path: string;
  pid: number;
  /** No write has come yet: the only state in which a truncation means "replace". */
  fresh: boolean;
  anchor: string;
  kind: Kind;
  spec: FileSpec;
  file: OpenFile;
}

/**
 * Bytes per slot of the answers table (Handles): int32 fd, int32 length, then the answer itself,
 * so an answer of up to ANSWER_SLOT - 8 bytes fits. The layout is the patched fuse-native's
 * (patches/fuse-native-answers.patch).
 */
export const ANSWER_SLOT = 512;

/**
 * The open-file table. Numbers start at 1 (fuse-native treats 0 as "no handle") and are not
 * reused until they wrap, so a late op on a released fd finds nothing instead of a stranger.
 */
export class Handles {
  #next = 1;
  readonly #open = new Map<number, Handle>();

  /**
   * noFlush: the table the mount shares with the patched fuse-native (mount.ts), where slot
   * fd % length holds fd while that open file has nothing to do at close: its flush is then
   * answered on the FUSE thread, without a trip to JavaScript. Absent without the patch.
   */
  constructor(private readonly noFlush?: Int32Array, answers?: Int32Array) {
    this.#answers = answers;
    this.#answerBytes = answers && new Uint8Array(answers.buffer, answers.byteOffset, answers.byteLength);
  }

  /**
   * answers: the other table shared with the patched fuse-native (mount.ts), of ANSWER_SLOT-byte
   * slots. Slot fd % slots holds fd, the length and the bytes of that open file's whole answer
   * (OpenFile.answered) while it is open, and the FUSE thread answers its reads from there. A
   * slot is filled before fd is stored in it, and only while it is free (0), so the bytes the
   * binding copies never change under it; an answer too long, or a slot another open file holds,
   * leaves the reads to JavaScript. Absent without the patch.
   */
  readonly #answers: Int32Array | undefined;
  readonly #answerBytes: Uint8Array | undefined;

  add(h: Omit<Handle, 'fd'>): Handle {
    while (this.#open.has(this.#next)) this.#bump();
    const handle = { ...h, fd: this.#next };
    this.#bump();
    this.#open.set(handle.fd, handle);
    const t = this.noFlush;
    if (t && !handle.file.flush) t[handle.fd % t.length] = handle.fd;
    this.offer(handle);
    return handle;
  }

  /** Lists an open file's whole answer in the answers table, once it has one (see #answers). */
  offer(h: Handle): void {
    const t = this.#answers;
    if (!t || !h.file.answered || this.#open.get(h.fd) !== h) return;
    const answer = h.file.answered();
    if (!answer || answer.length > ANSWER_SLOT - 8) return;
    const at = this.#answerSlot(h.fd, t);
    if (Atomics.load(t, at) !== 0) return;
    answer.copy(this.#answerBytes!, at * 4 + 8);
    t[at + 1] = answer.length;
    Atomics.store(t, at, h.fd);
  }

  /** The index in the table (of int32s) of fd's answer slot. */
  #answerSlot(fd: number, t: Int32Array): number {
    const words = ANSWER_SLOT / 4;
    return (fd % Math.floor(t.length / words)) * words;
  }

  get(fd: number): Handle | undefined {
    return this.#open.get(fd);
  }

  delete(fd: number): Handle | undefined {
    const h = this.#open.get(fd);
    this.#open.delete(fd);
    const t = this.noFlush;
    if (t && t[fd % t.length] === fd) t[fd % t.length] = 0;
    const a = this.#answers;
    if (a) {
      const at = this.#answerSlot(fd, a);
      if (Atomics.load(a, at) === fd) Atomics.store(a, at, 0);
    }
    return h;
  }

  /** Every open handle, for unmount to release. */
  all(): Handle[] {
    return [...this.#open.values()];
  }

  get size(): number {
    return this.#open.size;
  }

  #bump() {
    this.#next = this.#next >= 0x7fffffff ? 1 : this.#next + 1;
  }
}
