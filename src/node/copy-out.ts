import fs = require('node:fs');
import type { OutputReader } from '../api/types';

/**
 * Copies an output stream to a descriptor, exactly once: every read asks at the
 * count written out so far, and every write(2) is acknowledged with the count the kernel took,
 * as soon as it returns (a short write counts as short). Aborting `stop` ends the copy between
 * two writes (a read in progress is cancelled, a wait for room in the pipe cut short). However
 * the copy ends (end of stream, stop, a failed write such as EPIPE), the stream is given back at
 * exactly what was written, so the next reader gets the rest. Resolves with that count. `write`
 * makes each write (writeNow: write(2) on a non-blocking descriptor; see WriteOnce).
 *
 * Both ends of `circuit stdout` use it: the server writing into the CLI's own stdout (nothing
 * can then fall between a write and its acknowledgement: src/node/pipe-out.ts), and the CLI
 * itself when the server cannot (src/cli/io.ts).
 */
export async function copyOut(r: OutputReader, fd: number, stop: AbortSignal, write: WriteOnce = writeNow): Promise<number> {
  let at = 0;
  try {
    for (;;) {
      if (stop.aborted) break;
      let b: Buffer | null;
      try {
        // 64 KiB a write: what a SIGKILL between a write and its acknowledgement could repeat
        // where the CLI writes itself (docs/cli.md); the reads ahead keep the link busy anyway.
        b = await r.read(64 * 1024, { signal: stop }, at);
      } catch (e) {
        if (stop.aborted) break;
        throw e;
      }
      if (!b) break;
      await writeFd(fd, b, stop, (n) => {
        at += n;
        r.ack(at);
      }, write);
    }
  } finally {
    await Promise.race([r.release(at).catch(() => {}), new Promise((res) => setTimeout(res, 1000).unref())]);
  }
  return at;
}

/**
 * One write(2) of len bytes of b from off, or its like: the count the kernel took (a short write
 * is short), EAGAIN thrown when the descriptor has no room now. Either answered at once, or
 * (a write that may block, run on libuv's threadpool) as a promise.
 */
export type WriteOnce = (fd: number, b: Buffer, off: number, len: number) => number | Promise<number>;

/** write(2) on this thread: for a descriptor of its own in non-blocking mode (a pipe, a terminal). */
export const writeNow: WriteOnce = (fd, b, off, len) => fs.writeSync(fd, b, off, len);

/**
 * Writes b to a descriptor with `write` (a non-blocking one unless told), waiting for room as
 * long as it takes, until all is written or `stop` is aborted; `wrote` hears each write's count
 * as soon as it returns. A failed write (EPIPE) throws.
 */
export async function writeFd(fd: number, b: Buffer, stop: AbortSignal | undefined, wrote: (n: number) => void, write: WriteOnce = writeNow): Promise<void> {
  let off = 0;
  let idle = 1;
  while (off < b.length && !stop?.aborted) {
    let n: number;
    try {
      const w = write(fd, b, off, b.length - off);
      n = typeof w === 'number' ? w : await w; // a write made here is counted in the same turn
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EAGAIN') throw e;
      await pause(idle, stop);
      idle = Math.min(idle * 2, 20);
      continue;
    }
    idle = 1;
    off += n;
    wrote(n);
  }
}

/** Waits ms, or less if stop is aborted meanwhile. */
function pause(ms: number, stop: AbortSignal | undefined): Promise<void> {
  return new Promise((res) => {
    const t = setTimeout(done, ms);
    stop?.addEventListener('abort', done, { once: true });
    function done() {
      clearTimeout(t);
      stop?.removeEventListener('abort', done);
      res();
    }
  });
}
