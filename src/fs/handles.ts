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
  constructor(private readonly noFlush?: Int32Array) {}

  add(h: Omit<Handle, 'fd'>): Handle {
    while (this.#open.has(this.#next)) this.#bump();
    const handle = { ...h, fd: this.#next };
    this.#bump();
    this.#open.set(handle.fd, handle);
    const t = this.noFlush;
    if (t && !handle.file.flush) t[handle.fd % t.length] = handle.fd;
    return handle;
  }

  get(fd: number): Handle | undefined {
    return this.#open.get(fd);
  }

  delete(fd: number): Handle | undefined {
    const h = this.#open.get(fd);
    this.#open.delete(fd);
    const t = this.noFlush;
    if (t && t[fd % t.length] === fd) t[fd % t.length] = 0;
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
