import type net = require('node:net');
import type { CallOptions, PushChannel } from '../api/types';
import { AppError, E } from '../kit/errors';
import { abortable, deferred, drainedOrClosed } from '../kit/deferred';
import { OutputBuffer, type Lease } from './output-buffer';
import { fdtake } from './fdtake';
import { havePump, pumpOutput, type PumpSource } from './pump';

/**
 * A stream of another server pushed raw over its own TCP connection (docs/fs.md, "Another
 * server's output, pushed"), so that a byte of another server's process crosses no JavaScript on
 * either side: the mount's FUSE thread reads the connection itself, as it reads a local child's
 * pipe, and at the home the output pump's thread writes it from the child's pipe (pushFromPump;
 * JavaScript pushes a stream without a pump, such as a container's).
 *
 * The reader's server (the mount's daemon) asks the home for it on the session it reads the
 * lease by: `pushOpen` gives a 16-byte token, the reader dials the home's TCP port as a data
 * connection with that token (src/cluster/handshake.ts), and `push` starts it: from where the
 * lease's reads ended, the home writes every byte of the stream to the connection as it comes,
 * and the call answers with the stream's end offset once the last byte and the FIN are written.
 *
 * Exactly once holds as for reads ahead: a pushed byte is read, not acknowledged, and stays the
 * home's until the reader's side writes back, on the same connection, the offset up to which its
 * reader passed the bytes on (8 bytes, little-endian, a lease offset); the FUSE thread writes them
 * while it reads (fuse-native-direct.patch), JavaScript when it reads. The home keeps at most
 * the pump's ring (4 MiB), or when JavaScript pushes AHEAD_CAP windows (src/node/output-buffer.ts),
 * unacknowledged, which bounds what is in flight;
 * a release or a reader that vanishes leaves everything not acknowledged to the next reader, as
 * for any lease. Only a home without a cluster key pushes: a keyed cluster's bytes cross in TLS,
 * on the session (src/node/read-ahead.ts).
 */

/** Bytes of one write to the connection, at most. */
const PUSH_PIECE = 1 << 20;
/** How long a token waits for its data connection and its push, ms. */
const TOKEN_MS = 10_000;
/** Bytes of an acknowledgement on the connection. */
export const ACK_BYTES = 8;

interface Offer {
  lease: Lease;
  sock?: net.Socket;
  timer: NodeJS.Timeout;
}

/** The home's side: tokens it handed out, their connections, and the pushes. */
export class PushHub {
  readonly #offers = new Map<string, Offer>();
  /** Pushes begun, by who pushes: the producer's output pump, or JavaScript (for tests and diagnostics). */
  readonly begun = { pump: 0, js: 0 };
  /** Why the last stream that could have been pushed by the pump was not. */
  jsWhy: string | undefined;

  /** A token for a lease; its data connection and its push must come within TOKEN_MS. */
  offer(lease: Lease): Buffer {
    // node:crypto only here: a daemon that never pushes never loads it.
    const token = (require('node:crypto') as typeof import('node:crypto')).randomBytes(16);
    const key = token.toString('hex');
    const timer = setTimeout(() => this.#drop(key), TOKEN_MS);
    timer.unref();
    this.#offers.set(key, { lease, timer });
    return token;
  }

  /** The listener's onData: true if the token was handed out and has no connection yet. */
  readonly take = (token: Buffer, sock: net.Socket): boolean => {
    const o = this.#offers.get(token.toString('hex'));
    if (!o || o.sock) return false;
    o.sock = sock;
    sock.setNoDelay(true);
    sock.on('error', () => {});
    sock.on('close', () => this.#drop(token.toString('hex')));
    readAcks(sock, o.lease);
    return true;
  };

  /**
   * Pushes the lease's stream on the connection of token from where its reads ended; resolves
   * with the end offset once the stream ended and everything was written. Stops (and closes the
   * connection) when the caller goes (signal), the lease ends or the connection fails.
   */
  async run(token: Buffer, lease: Lease, signal: AbortSignal): Promise<number> {
    const key = token.toString('hex');
    const o = this.#offers.get(key);
    if (!o || o.lease !== lease || !o.sock) throw new AppError('EINVAL', 'no data connection for this token (it came late, or never)');
    clearTimeout(o.timer);
    this.#offers.delete(key);
    const sock = o.sock;
    const stop = new AbortController();
    const onAbort = () => stop.abort();
    signal.addEventListener('abort', onAbort, { once: true });
    sock.once('close', onAbort);
    let ended = false;
    try {
      if (process.env.CIRCUIT_NO_PUMP_PUSH !== '1') {
        const r = await pushFromPump(() => {
          sock.off('close', onAbort); // the socket goes, the connection stays (the pump's)
          sock.pause(); // the reader's acknowledgements are the pump's to read
          this.begun.pump++;
          return takeSocketFd(sock);
        }, lease, stop.signal);
        if (typeof r === 'number') {
          ended = true;
          return r;
        }
        this.jsWhy = r.why;
        if (r.prefix.length) await write(sock, [r.prefix], stop.signal);
      }
      this.begun.js++;
      for (;;) {
        const [at, parts] = await lease.readAheadParts(PUSH_PIECE, { signal: stop.signal });
        if (stop.signal.aborted || sock.destroyed) throw E.interrupted();
        if (!parts) {
          ended = true;
          sock.end();
          return at;
        }
        await write(sock, parts.parts, stop.signal);
      }
    } finally {
      signal.removeEventListener('abort', onAbort);
      sock.off('close', onAbort);
      if (!ended) sock.destroy();
    }
  }

  #drop(key: string): void {
    const o = this.#offers.get(key);
    if (!o) return;
    clearTimeout(o.timer);
    this.#offers.delete(key);
    o.sock?.destroy();
  }
}

/** Writes bytes to the connection; waits while it has no room. */
async function write(sock: net.Socket, parts: Buffer[], signal: AbortSignal): Promise<void> {
  let room = true;
  if (parts.length > 1) sock.cork();
  for (const b of parts) room = sock.write(b);
  if (parts.length > 1) sock.uncork();
  if (!room) await abortable(drainedOrClosed(sock), signal, () => E.interrupted());
}

/**
 * The push from the producer's output pump (native/fdtake/pump.c, "Pushing"): no byte of the
 * stream crosses JavaScript at the home either, and none is copied but into the socket. The
 * connection is the pump's from the first byte (nothing was written on it yet); the end offset
 * once the pump sent the last byte and shut the socket for writing. Where the pump cannot push
 * (no pump, the stream ended), the bytes this read that the caller must send first.
 */
async function pushFromPump(take: () => number, lease: Lease, signal: AbortSignal): Promise<number | { prefix: Buffer; why: string }> {
  const end = deferred<number>();
  end.promise.catch(() => {});
  const r = await lease.pushPipe(
    take,
    (at) => end.resolve(at),
    (ok) => end.reject(ok && !signal.aborted ? new AppError('EIO', 'the data connection closed before the end of the stream') : E.interrupted()),
    signal,
  );
  if (!r[1]) return { prefix: r[2], why: r[3] };
  const onAbort = () => lease.stopPush();
  signal.addEventListener('abort', onAbort, { once: true });
  try {
    return await end.promise;
  } finally {
    signal.removeEventListener('abort', onAbort);
  }
}

/** The reader's acknowledgements, 8 bytes each: the lease acknowledges the latest. */
function readAcks(sock: net.Socket, lease: Lease): void {
  let part: Buffer = Buffer.alloc(0);
  let last = 0;
  sock.on('data', (chunk: Buffer) => {
    const b = part.length ? Buffer.concat([part, chunk]) : chunk;
    const whole = b.length - (b.length % ACK_BYTES);
    if (whole === 0) {
      part = b;
      return;
    }
    const v = Number(b.readBigUInt64LE(whole - ACK_BYTES));
    part = Buffer.from(b.subarray(whole));
    if (v <= last) return;
    last = v;
    try {
      lease.ack(v);
    } catch {
      sock.destroy(); // an offset the lease never gave out: the reader's side is broken
    }
  });
}

/** Whether this process can read a pushed stream: the output pump reads it, and dupFd hands it over. */
export function canReadPush(): boolean {
  return process.env.CIRCUIT_NO_PUSH !== '1' && havePump() && typeof fdtake()?.dupFd === 'function';
}

/** A connected socket's descriptor, duplicated (the socket itself is then destroyed). */
export function takeSocketFd(sock: net.Socket): number {
  const fd = (sock as unknown as { _handle?: { fd?: number } })._handle?.fd;
  const dup = fdtake()?.dupFd;
  if (typeof fd !== 'number' || fd < 0 || !dup) {
    sock.destroy();
    throw E.notSupported('this socket has no descriptor to take');
  }
  try {
    return dup(fd);
  } finally {
    sock.destroy();
  }
}

/**
 * The reader's side: the connection read by the output pump into a buffer of this process, from
 * which reads are answered and which lends the connection to the FUSE thread while nothing of it
 * is buffered, exactly as a local child's stdout (src/node/output-buffer.ts). Offsets here are
 * the lease's: the first pushed byte is at `from`. Every byte the reader passes on is
 * acknowledged to the home on the connection.
 */
export class PushedStream {
  readonly #buf: OutputBuffer;
  readonly #lease: Lease;
  readonly #src: PumpSource;
  readonly #fd: number;
  /** The home's answer to push: the end offset, or why it stopped. */
  #end: number | undefined;
  #failed: AppError | undefined;
  readonly #answered: Promise<void>;
  readonly #stop = new AbortController();
  #acked: number;
  /** An acknowledgement (or the rest of one) that found no room: sent before the next. */
  #unsent: Buffer | undefined;
  #retry: NodeJS.Timeout | undefined;
  #lent = false;
  #closed = false;

  constructor(
    ch: PushChannel,
    readonly from: number,
    name: string,
  ) {
    this.#fd = ch.fd;
    this.#acked = from;
    this.#buf = new OutputBuffer(name, 1 << 20, () => this.#ack(this.from + this.#buf.base));
    this.#lease = this.#buf.acquire();
    const src = (this.#src = pumpOutput(ch.fd, {
      data: (c) => this.#buf.feed(c, src.pause, src.resume),
      end: () => this.#buf.end(),
    }));
    this.#buf.lender = src;
    this.#answered = ch.run(this.#stop.signal).then(
      (end) => {
        this.#end = end;
      },
      (e) => {
        this.#failed = new AppError('EIO', `the data connection of this stream failed: ${(e as Error).message}`);
      },
    );
  }

  async read(max: number, opts: CallOptions | undefined, at: number): Promise<Buffer | null> {
    const b = await this.#lease.read(max, opts, at - this.from);
    if (b !== null) return b;
    return this.#atEnd(at);
  }

  readNow(into: Buffer, max: number, at: number): number | undefined {
    const n = this.#lease.readNow(into, max, at - this.from);
    return n === null ? undefined : n; // the end is said by read(), once the home said it
  }

  lendPipe(at: number, revoke: () => void): { fd: number; ackAt: number } | undefined {
    if (this.#unsent || this.#closed) return undefined;
    const fd = this.#lease.lendPipe(at - this.from, revoke);
    if (fd === undefined) return undefined;
    this.#lent = true;
    return { fd, ackAt: at };
  }

  reclaim(count: number, keep: Buffer): void {
    this.#lent = false;
    this.#lease.reclaim(count, keep);
    this.#flush();
  }

  ack(at: number): void {
    this.#lease.ack(at - this.from);
  }

  /** Stops reading and closes the connection; the home stops pushing (its call is cancelled). */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    clearTimeout(this.#retry);
    this.#stop.abort();
    this.#src.stop();
    this.#lease.abandon();
  }

  /** The connection ended: the stream's end if the home said so there, else the failure. */
  async #atEnd(at: number): Promise<null> {
    await this.#answered;
    if (this.#end === at) return null;
    throw this.#failed ?? new AppError('EIO', `the data connection of this stream ended at offset ${at}, before the stream (${this.#end})`);
  }

  #ack(at: number): void {
    if (at <= this.#acked || this.#closed) return;
    this.#acked = at;
    const b = Buffer.alloc(ACK_BYTES);
    b.writeBigUInt64LE(BigInt(at));
    // an unsent one is older: only the rest of one already begun must go first, then the latest
    const begun = this.#unsent ? this.#unsent.length % ACK_BYTES : 0;
    this.#unsent = begun ? Buffer.concat([this.#unsent!.subarray(0, begun), b]) : b;
    this.#flush();
  }

  #flush(): void {
    if (!this.#unsent || this.#closed || this.#lent) return;
    try {
      const n = fdtake()!.sendNb(this.#fd, this.#unsent, 0, this.#unsent.length);
      this.#unsent = n >= this.#unsent.length ? undefined : this.#unsent.subarray(n);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EAGAIN') {
        this.#unsent = undefined; // the connection failed: the pump says so at its end
        return;
      }
    }
    if (this.#unsent && !this.#retry) {
      this.#retry = setTimeout(() => {
        this.#retry = undefined;
        this.#flush();
      }, 1);
    }
  }
}
