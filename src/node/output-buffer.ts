import type { CallOptions, OutputReader } from '../api/types';
import { E } from '../kit/errors';

/**
 * The buffer between a producer (a process's stdout, a container's stderr) and its readers.
 * Bytes flow as they arrive (no chunking). One reader holds the lease at a time; a second gets
 * EBUSY. A read that is aborted takes nothing, and what a reader did not take stays for the next.
 * Bytes handed to a reader stay "in flight" until that reader's next read or its release, so a
 * reader that vanishes mid-transfer (a dead connection) can give them back with abandon().
 * Above `window` buffered bytes the producer is asked to pause (back-pressure).
 */
export class OutputBuffer {
  readonly #chunks: Buffer[] = [];
  #size = 0;
  #ended = false;
  #lease: Lease | undefined;
  #waiters: Array<() => void> = [];
  #drainers: Array<() => void> = [];
  /** Total bytes ever pushed, for peek-like statistics. */
  total = 0;

  constructor(
    readonly name: string,
    readonly window = 1 << 20,
  ) {}

  get buffered(): number {
    return this.#size;
  }
  get ended(): boolean {
    return this.#ended;
  }
  /** True while the producer should wait (buffer above window). */
  get full(): boolean {
    return this.#size >= this.window;
  }

  /** Appends a chunk; returns false when the producer should pause until onDrain fires. */
  push(chunk: Buffer): boolean {
    if (this.#ended || chunk.length === 0) return !this.full;
    this.#chunks.push(chunk);
    this.#size += chunk.length;
    this.total += chunk.length;
    this.#wake();
    return !this.full;
  }

  /** Marks the end of the stream: readers get null once the buffer is empty. */
  end(): void {
    this.#ended = true;
    this.#wake();
  }

  /** Calls cb once the buffer falls below its window. */
  onDrain(cb: () => void): void {
    if (!this.full) cb();
    else this.#drainers.push(cb);
  }

  /** Takes the reader lease; EBUSY while another reader holds it. */
  acquire(): Lease {
    if (this.#lease) throw E.readerBusy(this.name);
    this.#lease = new Lease(this);
    return this.#lease;
  }

  /** Internal: removes up to max bytes from the front. */
  take(max: number): Buffer {
    const out: Buffer[] = [];
    let n = 0;
    while (this.#chunks.length && n < max) {
      const c = this.#chunks[0];
      if (c.length <= max - n) {
        out.push(c);
        n += c.length;
        this.#chunks.shift();
      } else {
        out.push(c.subarray(0, max - n));
        this.#chunks[0] = c.subarray(max - n);
        n = max;
      }
    }
    this.#size -= n;
    if (!this.full && this.#drainers.length) {
      const d = this.#drainers;
      this.#drainers = [];
      for (const cb of d) cb();
    }
    return out.length === 1 ? out[0] : Buffer.concat(out, n);
  }

  /** Internal: puts bytes back at the front (an abandoned lease's in-flight bytes). */
  unshift(b: Buffer): void {
    if (!b.length) return;
    this.#chunks.unshift(b);
    this.#size += b.length;
    this.#wake();
  }

  /** Internal: waits until there is data or the end; rejects with EINTR on abort. */
  ready(signal?: AbortSignal): Promise<void> {
    if (this.#size > 0 || this.#ended) return Promise.resolve();
    if (signal?.aborted) return Promise.reject(E.interrupted());
    return new Promise((resolve, reject) => {
      const onAbort = () => {
        this.#waiters = this.#waiters.filter((w) => w !== wake);
        reject(E.interrupted());
      };
      const wake = () => {
        signal?.removeEventListener('abort', onAbort);
        resolve();
      };
      this.#waiters.push(wake);
      signal?.addEventListener('abort', onAbort, { once: true });
    });
  }

  /** Internal: the lease ends. */
  free(l: Lease): void {
    if (this.#lease === l) this.#lease = undefined;
  }

  #wake(): void {
    const w = this.#waiters;
    this.#waiters = [];
    for (const cb of w) cb();
  }
}

/** One reader's hold on an OutputBuffer. */
export class Lease implements OutputReader {
  #inflight: Buffer | undefined;
  #done = false;
  constructor(readonly buf: OutputBuffer) {}

  async read(max: number, opts?: CallOptions): Promise<Buffer | null> {
    if (this.#done) throw E.readerBusy(this.buf.name);
    this.#inflight = undefined; // the previous read's bytes were delivered
    await this.buf.ready(opts?.signal);
    if (this.buf.buffered === 0) return null;
    const b = this.buf.take(Math.max(1, max));
    this.#inflight = b;
    return b;
  }

  async release(): Promise<void> {
    this.#inflight = undefined;
    this.#end();
  }

  /** The bytes of the last read were not delivered: they go back to the front, unread. */
  async unread(b: Buffer): Promise<void> {
    if (this.#inflight === b) {
      this.buf.unshift(b);
      this.#inflight = undefined;
    }
  }

  /** The reader vanished: bytes of its last read go back to the front for the next reader. */
  abandon(): void {
    if (this.#inflight) this.buf.unshift(this.#inflight);
    this.#inflight = undefined;
    this.#end();
  }

  #end(): void {
    if (this.#done) return;
    this.#done = true;
    this.buf.free(this);
  }
}
