import type { CallOptions, LentPipe, OutputReader, PushChannel } from '../api/types';
import { closeQuietly } from '../kit/fds';
import type { PushedStream } from './push';
import { AppError, toCircuitError, type CircuitError } from '../kit/errors';
import { copyAt, dropFront, sliceAt } from '../kit/chunks';
import { Waiters } from '../kit/waiters';

/**
 * A lease on another server's stream with its next reads kept in flight, so that the link never
 * idles between two reads of the reader (the mount's `cat`): without it each read waited one
 * round trip. Up to `limit` bytes (3 MiB) are asked for ahead, in pieces (768 KiB: each fits
 * one frame of the session), with the lease's readAhead, and kept here until the reader takes
 * them. Large pieces matter: each answer costs both servers a request, a reply and their
 * wake-ups, and at the home a piece with others queued behind it waits briefly to fill up
 * (src/node/output-buffer.ts), which the home's window allows since bytes read ahead do not
 * count as unread there.
 *
 * Exactly once holds as for the lease itself: bytes read ahead stay the stream's until the reader
 * acknowledges them (a read at a later offset, ack, release); the acknowledgement goes to the
 * home with the next request, or as a note when no request goes. A release leaves what was read
 * ahead and not taken to the next reader; a reader that vanishes (abandon) leaves everything it
 * did not acknowledge. Offsets are the lease's, as for any OutputReader.
 *
 * With `push` (the mount), once PUSH_AFTER bytes came this way, the lease is asked for a data
 * connection (src/node/push.ts): reads ahead stop, and when the last one is back the home pushes
 * the rest of the stream on that connection, which the mount's FUSE thread then reads itself
 * while nothing of it is buffered here. Where the home cannot push (a keyed cluster, an older
 * server) or the connection cannot be made, reads ahead simply go on.
 */
export class ReadAhead implements OutputReader {
  /** Bytes here, from offset #base (the last one acknowledged) to #end. */
  #chunks: Buffer[] = [];
  #base = 0;
  #end = 0;
  /** End of the last read: where a read without an offset goes on. */
  #cursor = 0;
  /** Requests in flight. */
  #asked = 0;
  /** An acknowledgement not yet sent. */
  #ack: number | undefined;
  #ended = false;
  #failed: CircuitError | undefined;
  #done = false;
  readonly #waiters = new Waiters();
  /** The home does not know readAhead (an older server): reads go to the lease one at a time. */
  #plain = false;
  /** Cancels the reads in flight at release: on a silent stream they would wait at the home for good. */
  readonly #inFlight = new AbortController();
  /** The push: not asked yet, being opened, waiting for the reads ahead in flight, on, or not to be. */
  #pushing: 'no' | 'opening' | 'draining' | 'on' | 'off' = 'no';
  #channel: PushChannel | undefined;
  #pushed: PushedStream | undefined;
  /** Bytes that came by reads ahead. */
  #flowed = 0;

  constructor(
    readonly lease: OutputReader & Required<Pick<OutputReader, 'readAhead'>>,
    readonly limit = 3 << 20,
    readonly piece = 768 << 10,
    /**
     * Every acknowledgement goes to the home at once, alone (the CLI's `circuit stdout`: its ack
     * must follow its write(2) in the same turn), instead of riding with the next read ahead.
     */
    readonly ackAtOnce = false,
    /** Have the home push the stream once it flows (the mount: see above). */
    readonly push = false,
  ) {}

  /** Where the push stands (see the class): for tests and diagnostics. */
  get pushing(): 'no' | 'opening' | 'draining' | 'on' | 'off' {
    return this.#pushing;
  }

  async read(max: number, opts?: CallOptions, at = this.#cursor): Promise<Buffer | null> {
    for (;;) {
      if (this.#plain) return this.#readPlain(max, opts, at);
      const p = this.#pushedAt(at);
      if (p) {
        const b = await p.read(max, opts, at);
        this.#cursor = at + (b?.length ?? 0);
        return b;
      }
      this.#check(at);
      this.#ackTo(at);
      if (this.#end > at) {
        const b = sliceAt(this.#chunks, 0, Math.max(1, max));
        this.#cursor = at + b.length;
        return b;
      }
      if (this.#ended) return null;
      if (this.#failed) throw this.#failed;
      await this.#waiters.wait(() => this.#done || this.#plain || this.#ended || this.#failed !== undefined || this.#end > at || this.#pushed !== undefined, opts?.signal);
    }
  }

  readNow(into: Buffer, max: number, at: number): number | null | undefined {
    const p = this.#pushedAt(at);
    if (p) {
      const n = p.readNow(into, max, at);
      if (n !== undefined) this.#cursor = at + n;
      return n;
    }
    if (this.#done || this.#plain || max <= 0 || !Number.isSafeInteger(at) || at < this.#base || at > this.#end) return undefined;
    this.#ackTo(at);
    if (this.#end > at) {
      const n = copyAt(this.#chunks, 0, into, max);
      this.#cursor = at + n;
      return n;
    }
    return this.#ended ? null : undefined;
  }

  lendPipe(at: number, revoke: () => void): LentPipe | undefined {
    return this.#pushedAt(at)?.lendPipe(at, revoke);
  }

  reclaim(count: number, keep: Buffer): void {
    const p = this.#pushed;
    if (!p) return;
    p.reclaim(count, keep);
    this.#cursor += count;
  }

  ack(at: number): void {
    if (this.#done) return;
    if (this.#plain) return this.lease.ack(at);
    const p = this.#pushedAt(at);
    if (p) return p.ack(at);
    this.#check(at);
    this.#ackTo(at);
  }

  async release(at = this.#cursor): Promise<void> {
    if (this.#done) return;
    this.#finish();
    await this.lease.release(at);
  }

  abandon(): void {
    if (this.#done) return;
    this.#finish();
    this.lease.abandon();
  }

  /** The pushed stream, when a read at `at` is one of its (past every byte read ahead), and drops those. */
  #pushedAt(at: number): PushedStream | undefined {
    if (!this.#pushed || this.#done || at < this.#end) return undefined;
    if (this.#chunks.length) this.#chunks = [];
    this.#base = this.#end;
    return this.#pushed;
  }

  /** Once PUSH_AFTER bytes came by reads ahead, asks for a data connection (see the class). */
  #maybePush(): void {
    if (!this.push || this.#pushing !== 'no' || this.#flowed < PUSH_AFTER || !this.lease.openPush || !push().canReadPush()) return;
    this.#pushing = 'opening';
    this.lease.openPush().then(
      (ch) => {
        if (!ch || this.#done || this.#ended || this.#failed) {
          if (ch) closeQuietly(ch.fd);
          this.#pushing = 'off';
        } else {
          this.#channel = ch;
          this.#pushing = 'draining';
          this.#startPush();
        }
        this.#pump();
      },
      () => {
        this.#pushing = 'off'; // reads ahead go on
        this.#pump();
      },
    );
  }

  /** The last read ahead is back: the home pushes from where it ended. */
  #startPush(): void {
    if (this.#pushing !== 'draining' || this.#asked > 0) return;
    const ch = this.#channel!;
    this.#channel = undefined;
    if (this.#done || this.#ended || this.#failed) {
      closeQuietly(ch.fd);
      this.#pushing = 'off';
      return;
    }
    this.#pushed = new (push().PushedStream)(ch, this.#end, 'a pushed stream');
    this.#pushing = 'on';
    this.#wake();
  }

  #check(at: number): void {
    if (this.#done) throw new AppError('EBADF', 'this output reader was released');
    if (!Number.isSafeInteger(at) || at < this.#base || at > this.#end) {
      throw new AppError('EINVAL', `offset ${at} is outside what this reader was given (${this.#base}..${this.#end})`);
    }
  }

  /** Drops the bytes before at (delivered) and asks for more; the acknowledgement goes with the next request, or alone. */
  #ackTo(at: number): void {
    if (at > this.#base) {
      dropFront(this.#chunks, at - this.#base);
      this.#base = at;
      this.#ack = at;
    }
    if (this.ackAtOnce && this.#ack !== undefined) {
      this.lease.ack(this.#ack);
      this.#ack = undefined;
    }
    this.#pump();
    if (this.#ack !== undefined) {
      this.lease.ack(this.#ack);
      this.#ack = undefined;
    }
  }

  /** The lease's own read (it checks the offset). */
  async #readPlain(max: number, opts: CallOptions | undefined, at: number): Promise<Buffer | null> {
    if (this.#done) throw new AppError('EBADF', 'this output reader was released');
    const b = await this.lease.read(max, opts, at);
    this.#cursor = at + (b?.length ?? 0);
    return b;
  }

  /** Keeps reads in flight while what is here and what is asked for stay within the limit. */
  #pump(): void {
    while (!this.#done && !this.#ended && !this.#failed && !this.#plain && (this.#pushing === 'no' || this.#pushing === 'off') && this.#end - this.#base + (this.#asked + 1) * this.piece <= this.limit) {
      this.#asked++;
      const ack = this.#ack;
      this.#ack = undefined;
      this.lease.readAhead(this.piece, { signal: this.#inFlight.signal }, ack).then(
        ([at, b]) => {
          this.#asked--;
          if (this.#done) return;
          if (b === null) this.#ended = true;
          else if (at !== this.#end) this.#failed ??= new AppError('EIO', `a read ahead came back at offset ${at}, expected ${this.#end}`);
          else {
            this.#chunks.push(b);
            this.#end += b.length;
            this.#flowed += b.length;
          }
          this.#maybePush();
          this.#startPush();
          this.#wake();
          this.#pump();
        },
        (err) => {
          this.#asked--;
          if (this.#done) return;
          const e = toCircuitError(err);
          if (e.code === 'ENOTSUP' && this.#end === 0) this.#plain = true;
          else this.#failed ??= e;
          this.#startPush(); // closes the connection it waited with
          this.#wake();
        },
      );
    }
  }

  #wake(): void {
    this.#waiters.wakeAll();
  }

  #finish(): void {
    this.#done = true;
    this.#chunks = [];
    this.#pushed?.close();
    if (this.#channel) closeQuietly(this.#channel.fd);
    this.#channel = undefined;
    this.#inFlight.abort();
    this.#wake();
  }
}

/** A reader across a connection gets read-ahead; one that answers without waiting (a local lease) does not need it. */
export function withReadAhead(r: OutputReader, ackAtOnce = false, push = false): OutputReader {
  return r.readAhead && !r.readNow ? new ReadAhead(r as OutputReader & Required<Pick<OutputReader, 'readAhead'>>, undefined, undefined, ackAtOnce, push) : r;
}

/** src/node/push.ts, loaded when a stream is first pushed (the CLI reaches this file and never pushes). */
const push = () => require('./push') as typeof import('./push');

/** Bytes that come by reads ahead before the home is asked to push the stream. */
const PUSH_AFTER = 2 << 20;
