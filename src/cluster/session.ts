import { EventEmitter } from 'node:events';
import type { Socket } from 'node:net';
import { Packr, RESERVE_START_SPACE } from 'msgpackr';
import { FrameDecoder, HEADER, DEFAULT_MAX_FRAME } from './frame';
import { CircuitError, SystemError, fromWire, toCircuitError, E, type WireError } from '../kit/errors';
import { ByteParts } from '../kit/chunks';
import { systemClock, type Clock, type TimerHandle } from '../kit/clock';
import { LazyAbort } from '../kit/abort';

/**
 * One connection, many logical streams. Every message is a msgpackr array in a frame. A message
 * that fits a frame goes whole; a larger one (a 16 MiB channel message) is cut into chunks on a
 * stream of its own, sent round-robin with the other streams' chunks so that one large transfer
 * never holds up a small request for more than one chunk, and paced by credit the receiver grants
 * as it takes each chunk. Requests carry ids; a caller that gives up sends CANCEL, which aborts
 * the handler's AbortSignal on the other side. Pings every pingMs; a peer silent for deadMs is
 * declared dead and every pending call fails with EHOSTDOWN.
 */

// append only: values are on the wire
const enum T {
  REQ = 0, // [REQ, id, op, args]
  RES = 1, // [RES, id, ok, value | WireError]
  CANCEL = 2, // [CANCEL, id]
  PING = 3, // [PING]
  PONG = 4, // [PONG]
  CHUNK = 5, // [CHUNK, sid, last, bytes]: part of a message too large for a frame
  CREDIT = 6, // [CREDIT, sid, chunks]
  NOTE = 7, // [NOTE, op, args]: one-way
}

/**
 * The numbers a session runs by. The defaults suit a LAN or loopback; tests shrink them.
 */
export interface SessionConfig {
  /** Largest frame body, bytes; a larger message goes in chunks (1 MiB). */
  maxFrame: number;
  /** A ping goes out this often, ms (1000). */
  pingMs: number;
  /** A peer silent this long is declared dead and every pending call fails, ms (4000). */
  deadMs: number;
  /** Chunks a stream may have unacknowledged (4). */
  window: number;
  /** Bytes of a message per chunk (256 KiB; at most maxFrame - 64). */
  chunkSize: number;
  /** Requests this side runs at once for the peer; more are refused with EAGAIN (4096). */
  maxInflight: number;
  /** Largest message assembled from chunks; a peer sending more is cut off (32 MiB). */
  maxMessage: number;
  /** Bytes of unfinished chunked messages held at once for this peer (128 MiB). */
  maxAssembly: number;
}

export const defaultSessionConfig: Readonly<SessionConfig> = {
  maxFrame: DEFAULT_MAX_FRAME,
  pingMs: 1000,
  deadMs: 4000,
  window: 4,
  chunkSize: 256 * 1024,
  maxInflight: 4096,
  maxMessage: 32 << 20,
  maxAssembly: 128 << 20,
};

export interface SessionOptions {
  clock?: Clock;
  /** Overrides of defaultSessionConfig. */
  config?: Partial<SessionConfig>;
}

export interface RequestContext {
  /**
   * The request's abort (a cancel from the peer, or the session's end). Ask it (`aborted`,
   * `onAbort`); its `signal`, an AbortSignal, is made only when read (src/kit/abort.ts says why).
   */
  abort: LazyAbort;
  session: Session;
}

export type RequestHandler = (op: string, args: unknown, ctx: RequestContext) => Promise<unknown>;
export type NoteHandler = (op: string, args: unknown, session: Session) => void;

interface OutStream {
  sid: number;
  /** The packed message; its first HEADER bytes are the unused frame header. */
  body: Buffer;
  off: number;
  credit: number;
}

const packr = new Packr({ useRecords: false, moreTypes: false, int64AsType: 'number' } as never);

/**
 * A message packed as a whole frame, length header included: msgpackr leaves the header's bytes
 * free in front of the body, so a frame is one buffer and one write (on TLS, a writev of header
 * and body was copied into one buffer before sealing).
 */
function packFrame(msg: unknown[]): Buffer {
  const f = packr.pack(msg, RESERVE_START_SPACE | HEADER);
  f.writeUInt32BE(f.length - HEADER, 0);
  return f;
}

/** A byte string this long or longer at the end of an answer goes out as it is, not copied into the frame. */
const OWN_TAIL = 64 << 10;
const NO_BYTES = Buffer.alloc(0);

/** The byte string an answer's value is or ends with (a read of a stream: [offset, bytes]). */
function tailOf(msg: unknown[]): unknown {
  if (msg[0] !== T.RES || msg[2] !== true) return undefined;
  const v = msg[3];
  return Array.isArray(v) ? v[v.length - 1] : v;
}

/** The answer with its tail replaced. */
function withTail(msg: unknown[], tail: unknown): unknown[] {
  const v = msg[3];
  return [msg[0], msg[1], msg[2], Array.isArray(v) ? [...v.slice(0, -1), tail] : tail];
}

/**
 * An answer whose value is, or ends with, a large byte string as the frame's head and then the
 * bytes themselves (one buffer, or the slices of a stream's chunks: ByteParts), written one after
 * the other: the same bytes on the wire as packFrame's, without copying them into one buffer and
 * then into msgpackr's (which also grows a fresh buffer of four times the message for each large
 * one). Undefined for any other message.
 */
function packTail(msg: unknown[]): Buffer[] | undefined {
  const last = tailOf(msg);
  const parts = last instanceof ByteParts ? last.parts : Buffer.isBuffer(last) ? [last] : undefined;
  const length = last instanceof ByteParts ? last.length : Buffer.isBuffer(last) ? last.length : 0;
  if (!parts || length < OWN_TAIL) return undefined;
  const f = packr.pack(withTail(msg, NO_BYTES), RESERVE_START_SPACE | HEADER);
  // the stub is the last thing packed: bin 8 of length 0 (c4 00) becomes bin 32 of the length
  if (f[f.length - 2] !== 0xc4 || f[f.length - 1] !== 0) return undefined;
  const head = Buffer.allocUnsafe(f.length + 3);
  f.copy(head, 0, 0, f.length - 2);
  head[f.length - 2] = 0xc6;
  head.writeUInt32BE(length, f.length - 1);
  head.writeUInt32BE(head.length - HEADER + length, 0);
  return [head, ...parts];
}

export class Session extends EventEmitter {
  readonly #sock: Socket;
  readonly #clock: Clock;
  readonly #dec: FrameDecoder;
  readonly #maxFrame: number;
  readonly #window: number;
  readonly #chunkSize: number;
  readonly #maxInflight: number;
  #nextId = 1;
  #nextSid = 1;
  readonly #calls = new Map<number, { resolve(v: unknown): void; reject(e: unknown): void }>();
  readonly #served = new Map<number, LazyAbort>();
  readonly #inChunks = new Map<number, { parts: Buffer[]; bytes: number }>();
  #assembling = 0;
  readonly #maxMessage: number;
  readonly #maxAssembly: number;
  readonly #remote: string;
  /** Whole frames (header included) waiting to be written; a large answer is two entries in a row (packTail). */
  #control: Buffer[] = [];
  #streams: OutStream[] = [];
  #blocked = false;
  #corked = false;
  #closed: CircuitError | undefined;
  #lastHeard: number;
  #pingTimer: TimerHandle | undefined;
  readonly pingMs: number;
  readonly deadMs: number;
  handler: RequestHandler = async (op) => {
    throw E.unknownOperation(op);
  };
  noteHandler: NoteHandler = () => {};
  /** Resolves when the session ends, with the reason. */
  readonly closed: Promise<CircuitError>;
  #resolveClosed!: (e: CircuitError) => void;

  constructor(sock: Socket, opts: SessionOptions = {}) {
    super();
    this.#sock = sock;
    this.#clock = opts.clock ?? systemClock;
    const cfg = { ...defaultSessionConfig, ...opts.config };
    this.#maxFrame = cfg.maxFrame;
    this.#dec = new FrameDecoder(this.#maxFrame + 64);
    this.#window = cfg.window;
    this.#chunkSize = Math.min(cfg.chunkSize, this.#maxFrame - 64);
    this.#maxInflight = cfg.maxInflight;
    this.#maxMessage = cfg.maxMessage;
    this.#maxAssembly = cfg.maxAssembly;
    this.#remote = `${sock.remoteAddress}:${sock.remotePort}`;
    this.pingMs = cfg.pingMs;
    this.deadMs = cfg.deadMs;
    this.#lastHeard = this.#clock.now();
    this.closed = new Promise((r) => (this.#resolveClosed = r));
    sock.setNoDelay(true);
    sock.on('data', (c: Buffer) => this.#onData(c));
    sock.on('drain', () => {
      this.#blocked = false;
      this.#pump();
    });
    sock.on('error', (e: NodeJS.ErrnoException) => {
      // On a TLS connection a record that fails to open (altered, replayed, forged) is an error
      // of OpenSSL's (EPROTO on the side that sends the alert); said as such, and logged.
      if (e.code === 'EPROTO' || e.code?.startsWith('ERR_SSL_')) {
        const why = e.message.replace(/^.*:error:[0-9A-F]+:SSL routines:/, '').replace(/:\.\.\/deps\/[^]*$/, '');
        this.destroy(new SystemError('EPROTO', `TLS failure on the connection with ${this.#remote} (a record altered, forged or refused): ${why}`, { cause: e }));
      }
      else this.destroy(new SystemError('ECONNRESET', `connection lost: ${e.message}`, { cause: e }));
    });
    sock.on('close', () => this.destroy(new SystemError('ECONNRESET', 'connection lost')));
    this.#schedulePing();
  }

  /** The peer's address, as it was when the connection opened. */
  get remote(): string {
    return this.#remote;
  }
  get isClosed(): boolean {
    return this.#closed !== undefined;
  }

  /** Sends a request and waits for its answer; aborting the signal cancels it on the peer. */
  call(op: string, args: unknown, opts: { signal?: AbortSignal; deadlineMs?: number } = {}): Promise<unknown> {
    if (this.#closed) return Promise.reject(this.#closed);
    if (opts.signal?.aborted) return Promise.reject(E.interrupted());
    const id = this.#nextId++;
    return new Promise((resolve, reject) => {
      let timer: TimerHandle | undefined;
      const done = () => {
        this.#calls.delete(id);
        opts.signal?.removeEventListener('abort', onAbort);
        this.#clock.clearTimeout(timer);
      };
      const onAbort = () => {
        done();
        this.#send([T.CANCEL, id]);
        reject(E.interrupted());
      };
      this.#calls.set(id, {
        resolve: (v) => {
          done();
          resolve(v);
        },
        reject: (e) => {
          done();
          reject(e);
        },
      });
      opts.signal?.addEventListener('abort', onAbort, { once: true });
      if (opts.deadlineMs) {
        timer = this.#clock.setTimeout(() => {
          done();
          this.#send([T.CANCEL, id]);
          reject(new SystemError('ETIMEDOUT', `${op} timed out after ${opts.deadlineMs} ms`));
        }, opts.deadlineMs);
      }
      this.#send([T.REQ, id, op, args]);
    });
  }

  /** A one-way message; no answer, no guarantee beyond the connection's. */
  notify(op: string, args: unknown, opts?: { now?: boolean }): void {
    if (this.#closed) return;
    this.#send([T.NOTE, op, args]);
    // now: handed to the kernel before this returns, not with the rest of the turn's frames (an
    // acknowledgement that must not wait behind whatever the caller does next)
    if (opts?.now && this.#corked) {
      this.#corked = false;
      this.#sock.uncork();
    }
  }

  /** Ends the session: pending calls fail with reason, handlers' signals abort. */
  destroy(reason: CircuitError = new SystemError('ECONNRESET', 'connection closed')): void {
    if (this.#closed) return;
    this.#closed = reason;
    this.#clock.clearTimeout(this.#pingTimer);
    for (const c of [...this.#calls.values()]) c.reject(reason);
    this.#calls.clear();
    for (const a of this.#served.values()) a.abort();
    this.#served.clear();
    this.#control = [];
    this.#streams = [];
    this.#sock.destroy();
    this.#resolveClosed(reason);
    this.emit('close', reason);
  }

  /**
   * Ends the session after what is queued has been written; resolves once it has been (handed to
   * the kernel), without waiting for the peer's end.
   */
  end(): Promise<void> {
    if (this.#closed) return Promise.resolve();
    return new Promise((resolve) => this.#sock.end(() => resolve()));
  }

  #schedulePing(): void {
    this.#pingTimer = this.#clock.setTimeout(() => {
      if (this.#closed) return;
      if (this.#clock.now() - this.#lastHeard > this.deadMs) {
        this.destroy(new SystemError('EHOSTDOWN', `peer ${this.remote} stopped answering`));
        return;
      }
      this.#send([T.PING]);
      this.#schedulePing();
    }, this.pingMs);
  }

  #send(msg: unknown[]): void {
    let frame: Buffer;
    try {
      const parts = packTail(msg);
      if (parts && parts[0].readUInt32BE(0) <= this.#maxFrame) {
        // in order, and nothing between them: #control is written first in, first out
        this.#control.push(...parts);
        this.#pump();
        return;
      }
      const last = tailOf(msg);
      frame = packFrame(last instanceof ByteParts ? withTail(msg, last.toBuffer()) : msg);
    } catch (e) {
      throw new SystemError('EINVAL', `cannot encode message: ${(e as Error).message}`);
    }
    if (frame.length - HEADER <= this.#maxFrame) {
      this.#control.push(frame);
    } else {
      this.#streams.push({ sid: this.#nextSid++, body: frame, off: HEADER, credit: this.#window });
    }
    this.#pump();
  }

  /** Writes queued frames while the socket takes them: control first, then streams round-robin. */
  #pump(): void {
    while (!this.#blocked && !this.#closed) {
      let frame = this.#control.shift();
      if (!frame) {
        const s = this.#streams.find((x) => x.credit > 0);
        if (!s) return;
        const end = Math.min(s.off + this.#chunkSize, s.body.length);
        const last = end === s.body.length;
        frame = packFrame([T.CHUNK, s.sid, last, s.body.subarray(s.off, end)]);
        s.off = end;
        s.credit--;
        // round-robin: the stream goes to the back (or away when finished)
        this.#streams.splice(this.#streams.indexOf(s), 1);
        if (!last) this.#streams.push(s);
      }
      this.#writeFrame(frame);
    }
  }

  /**
   * Frames written in one tick go out in one writev: the socket is corked at the first and
   * uncorked on the next tick (a syscall per frame cost a quarter of the time at 16-byte messages).
   */
  #writeFrame(frame: Buffer): void {
    if (!this.#corked) {
      this.#corked = true;
      this.#sock.cork();
      process.nextTick(() => {
        this.#corked = false;
        this.#sock.uncork();
      });
    }
    if (!this.#sock.write(frame)) this.#blocked = true;
  }

  #onData(chunk: Buffer): void {
    if (this.#closed) return;
    this.#lastHeard = this.#clock.now();
    let bodies: Buffer[];
    try {
      bodies = this.#dec.push(chunk);
    } catch (e) {
      this.destroy(toCircuitError(e));
      return;
    }
    for (const raw of bodies) {
      if (this.#closed) return;
      try {
        this.#onMessage(packr.unpack(raw));
      } catch (e) {
        const limit = e instanceof CircuitError && e.code === 'EMSGSIZE';
        const why = `${limit ? 'too much' : 'bad frame'} from ${this.remote}: ${(e as Error).message}`;
        this.destroy(new SystemError(limit ? 'EMSGSIZE' : 'EPROTO', why, { cause: e }));
        return;
      }
    }
  }

  #onMessage(m: unknown): void {
    if (!Array.isArray(m)) throw new Error('message is not an array');
    switch (m[0]) {
      case T.REQ:
        return this.#serve(m[1] as number, String(m[2]), m[3]);
      case T.RES: {
        const c = this.#calls.get(m[1] as number);
        if (!c) return; // cancelled or timed out: the answer has nowhere to go
        if (m[2]) c.resolve(m[3]);
        else c.reject(fromWire(m[3] as WireError));
        return;
      }
      case T.CANCEL:
        this.#served.get(m[1] as number)?.abort();
        return;
      case T.PING:
        this.#send([T.PONG]);
        return;
      case T.PONG:
        return;
      case T.CHUNK:
        return this.#onChunk(m[1] as number, Boolean(m[2]), m[3] as Buffer);
      case T.CREDIT: {
        const s = this.#streams.find((x) => x.sid === m[1]);
        if (s) s.credit += Number(m[2]) || 0;
        this.#pump();
        return;
      }
      case T.NOTE:
        this.noteHandler(String(m[1]), m[2], this);
        return;
      default:
        throw new Error(`unknown message type ${String(m[0])}`);
    }
  }

  /**
   * Assembles a chunked message. What a peer may make this side hold is bounded: one message at
   * most maxMessage bytes, all unfinished ones together at most maxAssembly; beyond that the
   * peer is cut off (unbounded memory was a way to take a daemon down).
   */
  #onChunk(sid: number, last: boolean, data: Buffer): void {
    let m = this.#inChunks.get(sid);
    if (!m) this.#inChunks.set(sid, (m = { parts: [], bytes: 0 }));
    m.parts.push(Buffer.from(data));
    m.bytes += data.length;
    this.#assembling += data.length;
    if (m.bytes > this.#maxMessage) throw new SystemError('EMSGSIZE', `message of more than ${this.#maxMessage} bytes`);
    if (this.#assembling > this.#maxAssembly) {
      throw new SystemError('EMSGSIZE', `more than ${this.#maxAssembly} bytes of unfinished messages`);
    }
    if (!last) {
      this.#send([T.CREDIT, sid, 1]);
      return;
    }
    this.#inChunks.delete(sid);
    this.#assembling -= m.bytes;
    this.#onMessage(packr.unpack(Buffer.concat(m.parts, m.bytes)));
  }

  #serve(id: number, op: string, args: unknown): void {
    if (this.#served.size >= this.#maxInflight) {
      this.#send([T.RES, id, false, new SystemError('EAGAIN', 'too many requests in flight on this connection').toWire()]);
      return;
    }
    const ac = new LazyAbort();
    this.#served.set(id, ac);
    let p: Promise<unknown>;
    try {
      p = this.handler(op, args, { abort: ac, session: this });
    } catch (e) {
      p = Promise.reject(e);
    }
    p.then(
      (v) => {
        if (this.#served.get(id) !== ac) return;
        this.#served.delete(id);
        this.#send([T.RES, id, true, v === undefined ? null : v]);
      },
      (e) => {
        if (this.#served.get(id) !== ac) return;
        this.#served.delete(id);
        this.#send([T.RES, id, false, toCircuitError(e).toWire()]);
      },
    );
  }
}
