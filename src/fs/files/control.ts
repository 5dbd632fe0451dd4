import { constants } from 'fs';
import type { CallOptions, Client, Kind, LentPipe } from '../../api/types';

const { O_RDONLY, O_WRONLY } = constants;
const ACCMODE = 3; // O_ACCMODE

/**
 * What every control file gets for one operation: the client, the element it belongs to, and the
 * call options (an AbortSignal that fires when the caller is interrupted or the mount goes away,
 * and the caller's origin for the operations log).
 */
export interface Ctx {
  client: Client;
  /** The element's anchor path, such as `/X88550014d4c82e4d/hi/charlie`. */
  anchor: string;
  kind: Kind;
  call: CallOptions;
  /** The last failure this mount saw on the element, for its `error` file. */
  lastError(): string;
  /**
   * True when the caller of a blocking file was interrupted while its answer was on the way: the
   * file then gives the answer back (unread, unrecv) and fails with EINTR. False for others.
   */
  interrupted?(): boolean;
  /** The caller's pid, bytes written so far and whether it is dying of a signal (interrupts.ts); null when unknown. */
  progress?(): { pid: number; wrote: number; dying: boolean } | null;
  /** The caller's pid and the bytes it has written so far, as progress but cheap (one pread); null when unknown. */
  wrote?(): Written | null;
}

export type Written = { pid: number; wrote: number };

/**
 * One open of a control file: the state that lives between open(2) and the last close. Opening
 * creates it and acts on nothing (docs/fs.md): the first read or write acts; a read-only
 * snapshot is rendered at open, which only looks (snapshot.ts).
 */
export interface OpenFile {
  /** Bytes at pos, at most len; an empty buffer is end of file. */
  read?(len: number, pos: number, ctx: Ctx): Promise<Buffer>;
  /**
   * The same read when it needs nothing that can wait (an answer rendered already): the mount
   * then replies at once, without setting up what a read that waits needs. Undefined otherwise.
   */
  readNow?(len: number, pos: number): Buffer | undefined;
  /**
   * The whole answer, once it is rendered and can no longer change: every later read at any
   * offset is a slice of it, so the mount may let the patched fuse-native answer those reads
   * without JavaScript (handles.ts). Undefined until then.
   */
  answered?(): Buffer | undefined;
  /**
   * A stream's read when its bytes are here already: copied straight into `into` (the buffer
   * FUSE answers from); the count (0 is the end), or undefined when it must wait and read()
   * runs instead. `wrote` samples the caller (Ctx.wrote).
   */
  readInto?(into: Buffer, len: number, wrote: () => Written | null): number | undefined;
  /**
   * A stream's pipe for the FUSE thread to read itself while nothing of it is buffered (its fd),
   * or undefined (ops/direct.ts); reclaim folds back what it read (count bytes, the last answer's
   * copy in keep, its caller's write count when it got it) before any other op of this open.
   */
  lend?(revoke: () => void): LentPipe | undefined;
  reclaim?(count: number, keep: Buffer, by: Written | null): void;
  /** Takes the bytes of one write(2); runs any request they complete and fails if it fails. */
  write?(data: Buffer, ctx: Ctx): Promise<void>;
  /**
   * The same write when it waits for nothing (bytes only buffered): true once taken, false when
   * write must run instead; throws what it refuses. ctx has no abort signal.
   */
  writeNow?(data: Buffer, ctx: Ctx): boolean;
  /** close(2) of one descriptor: judges a request still incomplete (may come more than once). */
  flush?(ctx: Ctx): Promise<void>;
  /** The last close: gives back leases and writers. Nobody waits for it. */
  release?(ctx: Ctx): Promise<void>;
  /** ftruncate(2), as `>` does after open; a no-op except where a file says otherwise. */
  truncate?(size: number): void;
}

/** A control file as an element directory declares it: data that readdir and getattr use. */
export interface FileSpec {
  name: string;
  mode: 'r' | 'w' | 'rw';
  /** An operation on it may wait for as long as it must: the caller is watched for interrupts. */
  blocking: boolean;
  /**
   * A fresh open; flags are open(2)'s (O_APPEND, O_TRUNC when the kernel passes it); ctx is the
   * opener's (no abort signal: nothing at open waits for the caller).
   */
  open(flags: number, ctx: Ctx): OpenFile;
  /** One line on what the file does, for the directory's `help` file. */
  help?: string;
}

/** The file with its line for `help`. */
export function doc(help: string, f: FileSpec): FileSpec {
  return { ...f, help };
}

/** A file whose reads come from one kind of control file and whose writes from another. */
export function readWrite(name: string, reader: FileSpec, writer: FileSpec): FileSpec {
  return {
    name,
    help: reader.help ?? writer.help,
    mode: 'rw',
    blocking: reader.blocking || writer.blocking,
    open(flags, ctx) {
      // An open for writing only never reads: its reader is not rendered; one for reading only
      // never writes, so it has nothing to judge at close either.
      const acc = flags & ACCMODE;
      const r = acc === O_WRONLY ? {} as OpenFile : reader.open(flags, ctx);
      const w = acc === O_RDONLY ? {} as OpenFile : writer.open(flags, ctx);
      return {
        read: r.read?.bind(r),
        readNow: r.readNow?.bind(r),
        answered: r.answered?.bind(r),
        readInto: r.readInto?.bind(r),
        lend: r.lend?.bind(r),
        reclaim: r.reclaim?.bind(r),
        write: w.write?.bind(w),
        writeNow: w.writeNow?.bind(w),
        truncate: w.truncate?.bind(w),
        flush: w.flush?.bind(w),
        release: r.release || w.release
          ? async (ctx) => {
            await Promise.all([r.release?.(ctx), w.release?.(ctx)]);
          }
          : undefined,
      };
    },
  };
}

/** Text for a reader: JSON values pretty-printed with tabs (as the CLI's peek), one newline at the end. */
export function jsonText(v: unknown): string {
  return JSON.stringify(v === undefined ? null : v, null, '\t') + '\n';
}

/** The slice of a rendered answer that a read at pos of len bytes gets. */
export function slice(buf: Buffer, len: number, pos: number): Buffer {
  if (pos >= buf.length) return Buffer.alloc(0);
  return buf.subarray(pos, Math.min(buf.length, pos + len));
}
