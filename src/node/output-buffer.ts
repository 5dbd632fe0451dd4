import type { CallOptions, OutputReader } from '../api/types';
import { AppError, E } from '../kit/errors';
import { copyAt, dropFront, partsAt, type ByteParts } from '../kit/chunks';
import { Waiters } from '../kit/waiters';
import { deferred } from '../kit/deferred';
import { closeQuietly } from '../kit/fds';
import type { PumpSource, PushEvents } from './pump';

/**
 * The buffer between a producer (a process's stdout, a container's stderr) and its readers.
 * Bytes flow as they arrive (no chunking). One reader holds the lease at a time; a second gets
 * EBUSY. Delivery is exactly once: a reader reads at an offset (counted from the first byte its
 * lease could see), and reading at offset N acknowledges every byte before N, which is then gone
 * for good. Bytes read but not acknowledged stay in the buffer, so a read whose answer was lost
 * (an interrupted caller, a dead connection, a middle server that died) is served again from the
 * same offset, and a lease that ends without acknowledging them leaves them to the next reader.
 * Above `window` unread bytes the producer is asked to pause (back-pressure); bytes a reader has
 * read and not yet acknowledged (a reader across a connection keeps up to a few MiB in flight,
 * src/node/read-ahead.ts) do not count, up to `AHEAD_CAP` windows of buffered bytes in all.
 */
export class OutputBuffer {
  readonly #chunks: Buffer[] = [];
  #size = 0;
  /** Absolute offset of the first buffered byte: everything before it was acknowledged. */
  #base = 0;
  /** Absolute offset up to which the current lease has read (its bytes from #base to here are in flight). */
  #read = 0;
  #ended = false;
  #lease: Lease | undefined;
  readonly #waiters = new Waiters();
  #drainers: Array<() => void> = [];
  /** Total bytes ever pushed, for peek-like statistics. */
  total = 0;
  /** The producer's pipe, when it can lend it (the output pump, src/node/pump.ts): Lease.lendPipe and Lease.pushPipe. */
  lender: Pick<PumpSource, 'lend' | 'unlend'> & Partial<Pick<PumpSource, 'push' | 'pushStop'>> | undefined;
  /** The lender's answer while it reads nothing for us: the pipe's fd, or 'held' until it has one. */
  #pipe: number | 'held' | undefined;
  /** While the pipe is lent: takes it back (the borrower then calls Lease.reclaim). */
  #revoke: (() => void) | undefined;

  constructor(
    readonly name: string,
    readonly window = 1 << 20,
    /** Called whenever acknowledged bytes are dropped (by any lease operation: read at a later offset, ack, read ahead, release). */
    readonly onDrop?: () => void,
  ) {}

  /** Bytes not yet acknowledged by a reader (read or not). */
  get buffered(): number {
    return this.#size;
  }
  get ended(): boolean {
    return this.#ended;
  }
  /** True while the producer should wait: window bytes unread, or AHEAD_CAP windows buffered in all. */
  get full(): boolean {
    return this.#base + this.#size - Math.max(this.#read, this.#base) >= this.window || this.#size >= this.window * AHEAD_CAP;
  }
  /** Absolute offset of the first byte not yet acknowledged. */
  get base(): number {
    return this.#base;
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

  /** push, pausing the producer (pause) when the buffer is full until it drains (resume). */
  feed(chunk: Buffer, pause: () => void, resume: () => void): void {
    if (!this.push(chunk)) {
      pause();
      this.onDrain(resume);
    }
  }

  /** Marks the end of the stream: readers get null once the buffer is empty. */
  end(): void {
    this.#revoke?.(); // what the borrower read comes first
    this.#unlend();
    this.#ended = true;
    this.#wake();
  }

  /** Calls cb once the buffer falls below its window. */
  onDrain(cb: () => void): void {
    if (!this.full) cb();
    else this.#drainers.push(cb);
  }

  /**
   * Takes the reader lease once the last one has ended: a lease whose pushed bytes are on their
   * way back from the output pump (Lease.pushPipe) is waited for, as it is already released.
   */
  acquireNext(): Lease | Promise<Lease> {
    const ending = this.#lease?.ending;
    return ending ? ending.then(() => this.acquireNext()) : this.acquire();
  }

  /** Takes the reader lease; EBUSY while another reader holds it. */
  acquire(): Lease {
    if (this.#lease) throw E.readerBusy(this.name);
    this.#lease = new Lease(this, this.#base);
    return this.#lease;
  }

  /** Internal: drops the bytes before absolute offset at (they were delivered). */
  ack(at: number): void {
    const n = Math.min(at - this.#base, this.#size);
    if (n <= 0) return;
    this.#base += n;
    this.#size -= n;
    dropFront(this.#chunks, n);
    this.#drain();
    this.onDrop?.();
  }

  /** Internal: the lease has read up to absolute offset at (its bytes no longer count as unread). */
  readTo(at: number): void {
    if (at <= this.#read) return;
    this.#read = at;
    this.#drain();
  }

  #drain(): void {
    if (!this.full && this.#drainers.length) {
      const d = this.#drainers;
      this.#drainers = [];
      for (const cb of d) cb();
    }
  }

  /** Internal: up to max bytes from absolute offset at (which must be buffered), left in place as the slices of the chunks. */
  partsAt(at: number, max: number): ByteParts {
    return partsAt(this.#chunks, at - this.#base, max);
  }

  /** Internal: copies up to max bytes from absolute offset at (which must be buffered) into `into`; the count. */
  copyAt(at: number, into: Buffer, max: number): number {
    return copyAt(this.#chunks, at - this.#base, into, max);
  }

  /** Internal: a lend was asked for and its pipe is still held (bytes of it on their way here). */
  get held(): boolean {
    return this.#pipe === 'held';
  }

  /** Internal: waits, at most ms, until there is a byte at absolute offset at, or the end; unlike ready, leaves a lend asked for as it is. */
  settled(at: number, ms: number, signal?: AbortSignal): Promise<void> {
    return atMost(ms, signal, (s) => this.#waiters.wait(() => this.#base + this.#size > at || this.#ended, s));
  }

  /** Internal: waits until there is a byte at absolute offset at, or the end; EINTR on abort. */
  ready(at: number, signal?: AbortSignal): Promise<void> {
    // A lend was asked for and not made (bytes were still here or on their way), and now a reader
    // waits with nothing here: the pump reads again, or nobody would (the next lend asks anew).
    if (this.#base + this.#size <= at && !this.#ended && this.#pipe !== undefined && !this.#revoke) this.#unlend();
    return this.#waiters.wait(() => this.#base + this.#size > at || this.#ended, signal);
  }

  /**
   * Internal: lends the producer's pipe while nothing is buffered past absolute offset at (bytes
   * before it may still wait for their acknowledgement); its fd, or undefined.
   */
  lend(at: number, revoke: () => void): number | undefined {
    if (this.#revoke || this.#ended || !this.lender) return undefined;
    // The pump stops reading at the first ask, so the buffer drains; the pipe is lent once
    // nothing of what was read before is left (here or on its way).
    if (this.#pipe === undefined || this.#pipe === 'held') this.#pipe = this.lender.lend();
    if (typeof this.#pipe !== 'number' || this.#base + this.#size !== at) return undefined;
    this.#revoke = revoke;
    return this.#pipe;
  }

  /** The pump reads the pipe again. */
  #unlend(): void {
    if (this.#pipe === undefined) return;
    this.#pipe = undefined;
    this.lender?.unlend();
  }

  /**
   * Internal: the lent pipe is back, count bytes read from it after absolute offset at (where the
   * buffer ended when it was lent); every byte before the last keep.length of them was
   * acknowledged, and so, unless `pushed`, was every byte before at (the FUSE thread's reader
   * came back for more); keep is held as read and not acknowledged. `pushed`: the pump pushed
   * them (Lease.pushPipe), and the bytes before at are acknowledged only as far as its reader did.
   */
  reclaimed(at: number, count: number, keep: Buffer, pushed = false): void {
    if (!this.#revoke) return;
    this.#revoke = undefined;
    if (count > 0) {
      const from = at + count - keep.length;
      if (!pushed || from > at) {
        this.#chunks.length = 0;
        this.#base = from;
        this.#size = 0;
      }
      if (keep.length) this.#chunks.push(keep);
      this.#size += keep.length;
      this.#read = Math.max(this.#read, at + count);
      this.total += count;
      this.onDrop?.();
    }
    this.#unlend();
    this.#drain();
    this.#wake();
  }

  /** Internal: the lease ends; what it read and did not acknowledge is unread again, for the next reader. */
  free(l: Lease): void {
    if (this.#lease !== l) return;
    this.#lease = undefined;
    this.#revoke?.(); // a borrower's reads first (the mount takes the pipe back before it releases)
    this.#unlend(); // held for a lend that never came
    this.#read = this.#base;
  }

  #wake(): void {
    this.#waiters.wakeAll();
  }
}

/** Runs wait with a signal that aborts after ms or with signal, whichever comes first; never rejects. */
async function atMost(ms: number, signal: AbortSignal | undefined, wait: (signal: AbortSignal) => Promise<void>): Promise<void> {
  const stop = new AbortController();
  const timer = setTimeout(() => stop.abort(), ms);
  const onAbort = () => stop.abort();
  signal?.addEventListener('abort', onAbort, { once: true });
  try {
    await wait(stop.signal).catch(() => {});
  } finally {
    clearTimeout(timer);
    signal?.removeEventListener('abort', onAbort);
  }
}

/**
 * Buffered bytes in all, in windows, that a reader's reads ahead may keep at the home: the mount's
 * read-ahead keeps up to 3 MiB (src/node/read-ahead.ts) on top of the 1 MiB window unread.
 */
const AHEAD_CAP = 4;
/** A piece that has this much already is of a stream that flows: it may wait for more. */
const FLOWING = 16 << 10;
/** How long a read ahead with others queued behind it may wait for a fuller piece, ms. */
const FULLER_MS = 5;

/**
 * One reader's hold on an OutputBuffer. Offsets are the lease's own: 0 is the first byte this
 * lease could read (the first byte no earlier reader acknowledged).
 */
export class Lease implements OutputReader {
  readonly #start: number;
  /** End of the last read: where a read without an offset goes on. */
  #cursor = 0;
  #acked = 0;
  #done = false;
  #ahead: Promise<unknown> = Promise.resolve();
  /** Reads ahead asked for and not yet answered. */
  #queued = 0;
  /** While the producer's pump pushes the pipe for this lease (pushPipe): ends it; back once it is over. */
  #push: { stop(): void; back: Promise<void> } | undefined;
  /** Set once the lease ends with a push on: resolved when the buffer is free again. */
  #freed: ReturnType<typeof deferred<void>> | undefined;
  constructor(
    readonly buf: OutputBuffer,
    start: number,
  ) {
    this.#start = start;
  }

  async read(max: number, opts?: CallOptions, at = this.#cursor): Promise<Buffer | null> {
    if (this.#done) throw E.readerBusy(this.buf.name);
    this.ack(at);
    return this.#from(at, max, opts);
  }

  /**
   * For a reader across a connection that keeps reads in flight: acknowledges the bytes before
   * ack (when given), then reads up to max bytes where the last read ended, acknowledging none of
   * them; [offset, bytes], bytes null at the end. Reads ahead run one after another, in the order
   * they were asked, so each starts where the one before it ended.
   */
  readAhead(max: number, opts?: CallOptions, ack?: number): Promise<[number, Buffer | null]> {
    return this.readAheadParts(max, opts, ack).then(([at, p]) => [at, p && p.toBuffer()]);
  }

  /** readAhead with the bytes as the slices of the buffer's chunks, for a session to write as they are (src/node/serve.ts). */
  readAheadParts(max: number, opts?: CallOptions, ack?: number): Promise<[number, ByteParts | null]> {
    if (this.#done) return Promise.reject(E.readerBusy(this.buf.name));
    // At once, in the order the acknowledgements were sent (a note may have gone past it).
    if (ack !== undefined && ack > this.#acked) {
      try {
        this.ack(ack);
      } catch (e) {
        return Promise.reject(e);
      }
    }
    this.#queued++;
    const r = this.#ahead.then(async (): Promise<[number, ByteParts | null]> => {
      try {
        if (this.#done) throw E.readerBusy(this.buf.name);
        const at = this.#cursor;
        await this.buf.ready(this.#start + at, opts?.signal);
        if (this.#queued > 1 && at > 0) await this.#fuller(this.#start + at, max, opts?.signal);
        return [at, await this.#parts(at, max, opts)];
      } finally {
        this.#queued--;
      }
    });
    this.#ahead = r.catch(() => {});
    return r;
  }

  /**
   * With more reads ahead queued behind this one, its reader has bytes in flight and is not
   * waiting on this piece alone: when the stream is flowing fast (FLOWING bytes are here
   * already), the piece waits up to FULLER_MS for the rest of its bytes, so a fast stream crosses
   * in fewer, larger answers (per answer, both servers pay a request, a reply and their
   * wake-ups). The lease's first read, a lone read ahead, a trickle (an interactive stream's
   * lines), the end or a paused producer are answered at once; the wait ends early when the
   * caller goes.
   */
  async #fuller(from: number, max: number, signal?: AbortSignal): Promise<void> {
    const b = this.buf;
    const have = b.base + b.buffered - from;
    if (have < FLOWING || have >= max || b.ended || b.full || signal?.aborted) return;
    await atMost(FULLER_MS, signal, (s) => b.ready(from + max - 1, s));
  }

  async #from(at: number, max: number, opts?: CallOptions): Promise<Buffer | null> {
    return (await this.#parts(at, max, opts))?.toBuffer() ?? null;
  }

  async #parts(at: number, max: number, opts?: CallOptions): Promise<ByteParts | null> {
    await this.buf.ready(this.#start + at, opts?.signal);
    if (this.#done) throw E.readerBusy(this.buf.name);
    if (this.buf.base + this.buf.buffered <= this.#start + at) return null;
    const b = this.buf.partsAt(this.#start + at, Math.max(1, max));
    this.#cursor = at + b.length;
    this.buf.readTo(this.#start + this.#cursor);
    return b;
  }

  readNow(into: Buffer, max: number, at: number): number | null | undefined {
    if (this.#done || max <= 0 || !Number.isSafeInteger(at) || at < this.#acked || at > this.#cursor) return undefined;
    this.ack(at);
    const from = this.#start + at;
    if (this.buf.base + this.buf.buffered > from) {
      const n = this.buf.copyAt(from, into, Math.min(max, into.length));
      this.#cursor = at + n;
      this.buf.readTo(this.#start + this.#cursor);
      return n;
    }
    return this.buf.ended ? null : undefined;
  }

  lendPipe(at: number, revoke: () => void): number | undefined {
    if (this.#done || this.#queued > 0 || at !== this.#cursor) return undefined;
    return this.buf.lend(this.#start + at, revoke);
  }

  /**
   * For the home's push from its output pump (src/node/push.ts): reads on (as a read ahead does)
   * what is buffered here, lends the producer's pipe, and has the pump push those bytes, then the
   * pipe, to the socket that `sock` gives (called once, only then). [offset of the first byte
   * pushed, true] once the pump pushes; else [offset, false, the bytes read here, why not], which the
   * caller sends itself before it reads on (no pump to push: a container's output, the stream
   * ended). While the pump pushes, its reader's acknowledgements come from the pump; release and
   * abandon take back what it did not acknowledge first.
   */
  async pushPipe(sock: () => number, ended: (at: number) => void, over: (ok: boolean) => void, signal: AbortSignal): Promise<[number, true] | [number, false, Buffer, string]> {
    const from = this.#cursor;
    const parts: Buffer[] = [];
    const lender = this.buf.lender;
    // A piece of the pipe on its way here comes within a turn or two; a bound all the same.
    for (let i = 0; i < 64 && lender?.push && !this.#done && !this.#push && this.#queued === 0 && !signal.aborted; i++) {
      const at = this.#cursor;
      const stop = () => lender.pushStop?.();
      if (this.lendPipe(at, stop) !== undefined) {
        const prefix = parts.length ? Buffer.concat(parts) : undefined;
        const back = deferred<void>();
        const events: PushEvents = {
          acked: (v) => this.#pushAcked(v, at),
          ended,
          done: (r) => {
            this.#push = undefined;
            if (r) this.#pushAcked(r.acked, at);
            this.reclaim(r ? r.tail - at : 0, r?.keep ?? Buffer.alloc(0), true);
            back.resolve();
            over(r !== undefined);
          },
        };
        let fd: number | undefined;
        try {
          fd = sock();
          if (lender.push(fd, from, prefix, events)) {
            this.#push = { stop, back: back.promise };
            return [from, true];
          }
          throw new AppError('EIO', 'the output pump could not take the push');
        } catch (e) {
          if (fd !== undefined) closeQuietly(fd);
          this.reclaim(0, Buffer.alloc(0)); // the lend is undone; the bytes read here stay read, not acknowledged
          throw e;
        }
      }
      const b = this.buf;
      if (b.base + b.buffered > this.#start + at) {
        const p = b.partsAt(this.#start + at, Number.MAX_SAFE_INTEGER);
        parts.push(p.toBuffer());
        this.#cursor = at + p.length;
        b.readTo(this.#start + this.#cursor);
      } else if (b.held) await b.settled(this.#start + at, 5, signal);
      else break;
    }
    const why = !lender?.push ? 'no pump' : this.buf.ended ? 'the stream ended' : this.#done || signal.aborted ? 'the reader went' : this.#queued > 0 || this.#push ? 'reads in flight' : this.buf.held ? 'the pipe stayed held' : 'the pipe cannot be lent';
    return [from, false, Buffer.concat(parts), why];
  }

  /** Ends the pump's push (pushPipe), if one is on: what it did not acknowledge comes back. */
  stopPush(): void {
    this.#push?.stop();
  }

  /** An acknowledgement the pump read, of bytes up to where the pipe was lent (the pump keeps the rest). */
  #pushAcked(v: number, lentAt: number): void {
    const at = Math.min(v, lentAt);
    if (at <= this.#acked) return;
    this.#acked = at;
    this.buf.ack(this.#start + at);
  }

  reclaim(count: number, keep: Buffer, pushed = false): void {
    const at = this.#start + this.#cursor;
    if (count > 0) {
      this.#cursor += count;
      // pushed: acknowledged as far as the pump's reader did (#pushAcked), which may be before at
      if (!pushed || keep.length < count) this.#acked = this.#cursor - keep.length;
    }
    this.buf.reclaimed(at, count, keep, pushed);
  }

  ack(at: number): void {
    if (this.#done) return;
    if (!Number.isSafeInteger(at) || at < this.#acked || at > this.#cursor) {
      throw new AppError('EINVAL', `offset ${at} is outside what this reader was given (${this.#acked}..${this.#cursor})`);
    }
    this.#acked = at;
    this.buf.ack(this.#start + at);
  }

  async release(at = this.#cursor): Promise<void> {
    if (this.#done) return;
    if (this.#push) {
      // the pump's reader acknowledged what it passed on: that comes back first
      await this.#takeBack(this.#push);
      if (this.#done) return;
    }
    try {
      this.ack(at);
    } finally {
      this.#end();
    }
  }

  abandon(): void {
    this.#end();
  }

  /** While the lease is ending and the pump hands back what it pushed: settles once the buffer is free for the next reader. */
  get ending(): Promise<void> | undefined {
    return this.#freed?.promise;
  }

  #end(): void {
    if (this.#done) return;
    this.#done = true;
    const push = this.#push;
    if (!push) {
      this.buf.free(this);
      this.#freed?.resolve();
      return;
    }
    // The buffer stays this lease's until the pump has handed back what was not acknowledged.
    void this.#takeBack(push).then(() => {
      this.buf.free(this);
      this.#freed!.resolve();
    });
  }

  /** Ends the pump's push; the lease is ending from now on (`ending`). Settles once the pump handed back. */
  #takeBack(push: { stop(): void; back: Promise<void> }): Promise<void> {
    this.#freed ??= deferred<void>();
    push.stop();
    return push.back;
  }
}
