/**
 * The start of every TCP connection: a versioned preamble, then (with a cluster key) TLS 1.3.
 *
 * 1. Preamble, in both modes. The dialer sends 42 bytes:
 *      u32 length 38 | "CRKT" | wire version (2) | role 'D' | mode (0 no key, 1 TLS with a key)
 *      | 31 reserved bytes (zero; ignored)
 *    The listener reads it and, if the version is ours, answers with its own (role 'L'). A peer of
 *    another version, or the other mode, is refused with a reason on both sides. The layout is
 *    the one of the version-1 keyed hello, so a version-1 peer reads ours as "peer speaks protocol
 *    version 2, not 1"; a version-1 keyless client (which sends a request frame at once, without a
 *    preamble) gets an error answer to that request saying it must be upgraded.
 * 2. With a key: TLS 1.3 over the same socket (node:tls, OpenSSL), authenticated by an external
 *    pre-shared key P = HKDF-SHA256(K, info "circuit/2 tls psk") under the identity "circuit/2".
 *    The client offers only the psk_dhe_ke mode (OpenSSL's default), so every connection also
 *    runs an ephemeral X25519 exchange: its traffic keys cannot be derived from K afterwards
 *    (forward secrecy). Suites: TLS_AES_128_GCM_SHA256 or TLS_CHACHA20_POLY1305_SHA256 (a PSK
 *    from a callback needs a SHA-256 suite). A peer without K fails the PSK binder check; the
 *    listener then sends an alert and closes, having revealed nothing but its preamble.
 *    Without a key the socket carries plaintext frames after the preamble, as in the original.
 *
 * 3. A data connection (src/node/push.ts): a dialer that sends role 'P' and, in the reserved
 *    bytes, a 16-byte token its server handed out over a session, asks for a stream of the
 *    listener's to be pushed to it raw. Only a listener without a key takes it (the bytes would
 *    cross in the clear, as every byte of a keyless cluster does): it hands the socket, the token
 *    checked, to its `onData` and then answers with its preamble; nothing else is said on it.
 *
 * Nothing past the preamble is read here: the preamble is read exactly (paused-mode `read(n)`),
 * and TLS picks up any bytes already buffered on the socket. Call handshake on a fresh socket
 * before attaching a reader; use the socket it resolves with (a TLSSocket with a key).
 */
import type * as net from 'node:net';
import type * as tls from 'node:tls';
import { Packr } from 'msgpackr';
import { AppError, SystemError } from '../kit/errors';
import { systemClock, type Clock, type TimerHandle } from '../kit/clock';
import { MIN_KEY_BYTES } from './keys';

/** The wire version: the preamble's version byte. Version 1 was the hand-written keyed handshake. */
export const WIRE_VERSION = 2;
/** Bytes of a preamble, its length prefix included. */
export const PREAMBLE_BYTES = 42;
/** How long a handshake (preamble and TLS) may take unless the caller says otherwise. */
export const DEFAULT_HANDSHAKE_TIMEOUT_MS = 5000;
/** The dialer's error text, the original's: a prober cannot tell a wrong key from no server. */
export const DIAL_REFUSED = 'addressed server is gone or authentication failed';
/** The TLS 1.3 suites offered, in the listener's order of preference. */
export const TLS_CIPHERS = 'TLS_AES_128_GCM_SHA256:TLS_CHACHA20_POLY1305_SHA256';
/** The PSK identity; it names the derivation of the PSK, so a future one can differ. */
export const PSK_IDENTITY = 'circuit/2';

const MAGIC = Buffer.from('CRKT', 'latin1');
const BODY_BYTES = PREAMBLE_BYTES - 4;
const ROLE_BYTE = { dialer: 0x44, listener: 0x4c, data: 0x50 } as const; // 'D', 'L', 'P'
/** Bytes of a data connection's token, in the preamble's reserved bytes. */
export const DATA_TOKEN_BYTES = 16;
const TOKEN_AT = 11;
const MODE = { plain: 0, tls: 1 } as const;
/** Largest frame we read from a version-1 keyless client to answer its first request. */
const MAX_OLD_FRAME = 64 * 1024;

export type Role = 'dialer' | 'listener';

export interface HandshakeOptions {
  /** Whole-handshake deadline in ms (default 5000); a slow or silent peer is dropped. */
  timeoutMs?: number;
  /** Where the deadline's timer comes from; tests may pass a ManualClock. */
  clock?: Clock;
  /** Called with the TLS socket once it exists (tests inspect what was negotiated). */
  onTls?: (s: tls.TLSSocket) => void;
  /**
   * The listener's taker of data connections (mode plain only): true if the token is one it
   * handed out, and then the socket is its own. Without it a data connection is refused.
   */
  onData?: (token: Buffer, sock: net.Socket) => boolean;
}

/** Sockets that handshake() handed to onData: the listener makes no session of them. */
const handedOff = new WeakSet<net.Socket>();
export function isDataConnection(s: net.Socket): boolean {
  return handedOff.has(s);
}

/** The peer speaks another wire version: said as it is, never hidden behind DIAL_REFUSED. */
export class WireVersionError extends SystemError {
  constructor(message: string) {
    super('EPROTO', message);
  }
}

/**
 * Runs the handshake on a connected socket; `key` null means no key (plaintext). Resolves with
 * the socket to use. On failure destroys the socket and rejects with a SystemError: a dialer gets
 * WireVersionError for a version mismatch and otherwise EACCES with DIAL_REFUSED (the reason is
 * the cause); a listener gets EACCES, EPROTO, ETIMEDOUT or ECONNRESET with the reason, to be logged.
 */
export async function handshake(
  sock: net.Socket, key: Buffer | null, role: Role, opts: HandshakeOptions = {},
): Promise<net.Socket> {
  if (key && key.length < MIN_KEY_BYTES) {
    throw new AppError('EINVAL', `cluster key is ${key.length} bytes; at least ${MIN_KEY_BYTES} are required`);
  }
  const peer = `${sock.remoteAddress ?? '?'}:${sock.remotePort ?? '?'}`; // gone once destroyed
  const clock = opts.clock ?? systemClock;
  const timeoutMs = opts.timeoutMs ?? DEFAULT_HANDSHAKE_TIMEOUT_MS;
  const io = new ExactReader(sock);
  let secure: tls.TLSSocket | undefined;
  let expired: (f: Fault) => void = () => undefined;
  const deadline = new Promise<never>((_, reject) => (expired = reject));
  deadline.catch(() => undefined);
  const timer: TimerHandle = clock.setTimeout(() => expired(fault('ETIMEDOUT', `handshake did not finish in ${timeoutMs} ms`)), timeoutMs);
  try {
    const run = async (): Promise<net.Socket> => {
      const mode = key ? MODE.tls : MODE.plain;
      if (role === 'dialer') await dialerPreamble(io, sock, mode);
      else {
        const token = await listenerPreamble(io, sock, mode, !!opts.onData);
        if (token) {
          io.detach();
          if (!opts.onData!(token, sock)) throw fault('EACCES', 'a data connection with a token this server did not hand out');
          sock.write(preamble('listener', mode));
          handedOff.add(sock);
          return sock;
        }
      }
      io.detach();
      if (!key) return sock;
      sock.on('error', () => undefined); // the TLS socket reports; the raw one must not throw
      const { startTls } = await import('./tls');
      secure = startTls(sock, pskOf(key), role);
      opts.onTls?.(secure);
      return secure;
    };
    const s = await Promise.race([run(), deadline]);
    if (secure) {
      await Promise.race([tlsReady(secure, role), deadline]);
      secure.removeAllListeners('error');
    }
    clock.clearTimeout(timer);
    return s;
  } catch (err) {
    clock.clearTimeout(timer);
    io.detach();
    secure?.on('error', () => undefined);
    secure?.destroy();
    sock.on('error', () => undefined); // late errors of a dropped socket are of no interest
    sock.destroy();
    throw refusal(err, role, peer);
  }
}

/** The dialer: sends its preamble, then reads and checks the listener's. */
async function dialerPreamble(io: ExactReader, sock: net.Socket, mode: number, token?: Buffer): Promise<void> {
  const mine = preamble('dialer', mode);
  if (token) {
    mine[9] = ROLE_BYTE.data;
    token.copy(mine, TOKEN_AT, 0, DATA_TOKEN_BYTES);
  }
  sock.write(mine);
  const theirs = await io.next(PREAMBLE_BYTES);
  if (!theirs.subarray(0, 8).equals(preambleHead())) throw fault('EPROTO', 'server is not speaking the circuit handshake');
  const p = parsePreamble(theirs);
  if (p.version !== WIRE_VERSION) {
    throw new WireVersionError(`server speaks circuit wire version ${p.version}; this circuit speaks version ${WIRE_VERSION}: run the same version on both`);
  }
  if (p.role !== ROLE_BYTE.listener) throw fault('EPROTO', 'server does not act as the listener');
  if (p.mode !== mode) throw fault('EACCES', mode === MODE.tls ? 'server has no cluster key' : 'server requires a cluster key');
}

/**
 * The listener: reads the dialer's preamble and answers with its own if the version is ours (a
 * mode mismatch is answered too, so the dialer learns it is refused). Old peers are told why.
 * A data connection's token, unanswered yet, when the dialer asks for one and `data` says this
 * listener takes them.
 */
async function listenerPreamble(io: ExactReader, sock: net.Socket, mode: number, data: boolean): Promise<Buffer | undefined> {
  const head = await io.next(8);
  if (!head.equals(preambleHead())) {
    if (mode === MODE.plain) await answerOldClient(io, sock, head);
    throw fault('EPROTO', 'peer is not speaking the circuit handshake');
  }
  const whole = Buffer.concat([head, await io.next(PREAMBLE_BYTES - 8)]);
  const p = parsePreamble(whole);
  if (p.role === ROLE_BYTE.data && p.version === WIRE_VERSION) {
    if (!data || mode !== MODE.plain || p.mode !== MODE.plain) throw fault('EACCES', 'a data connection to a server that takes none (it has a cluster key)');
    return whole.subarray(TOKEN_AT, TOKEN_AT + DATA_TOKEN_BYTES);
  }
  if (p.role !== ROLE_BYTE.dialer) throw fault('EPROTO', 'peer does not act as the dialer');
  if (p.version !== WIRE_VERSION) {
    // A version-1 dialer reads this as a hello of version 2 and refuses it by that name.
    sock.end(preamble('listener', mode));
    throw fault('EPROTO', `peer speaks circuit wire version ${p.version}, not ${WIRE_VERSION} (run the same version on both)`);
  }
  sock.write(preamble('listener', mode));
  if (p.mode !== mode) throw fault('EACCES', mode === MODE.tls ? 'peer has no cluster key' : 'peer uses a cluster key; this server has none');
}

/**
 * The dialer of a data connection (src/node/push.ts) on a connected socket: its preamble with
 * the token, then the listener's. Resolves with the socket, nothing past the preamble read; a
 * refusal rejects with EACCES (the listener closes without answering).
 */
export async function dataHandshake(sock: net.Socket, token: Buffer, timeoutMs = DEFAULT_HANDSHAKE_TIMEOUT_MS): Promise<net.Socket> {
  const io = new ExactReader(sock);
  const timer = setTimeout(() => sock.destroy(new Error(`data connection not answered in ${timeoutMs} ms`)), timeoutMs);
  try {
    await dialerPreamble(io, sock, MODE.plain, token);
    return sock;
  } catch (err) {
    sock.destroy();
    throw err instanceof WireVersionError ? err : new SystemError('EACCES', `data connection refused: ${(err as Error).message}`, { cause: err });
  } finally {
    clearTimeout(timer);
    io.detach();
  }
}

/**
 * A version-1 keyless client sends its first request frame at once. If `head` starts one, read
 * it and answer that request with an error naming the versions, so the old CLI prints it.
 */
async function answerOldClient(io: ExactReader, sock: net.Socket, head: Buffer): Promise<void> {
  const len = head.readUInt32BE(0);
  const first = head[4]!;
  const isArray = (first >= 0x90 && first <= 0x9f) || first === 0xdc || first === 0xdd;
  if (!isArray || len < 4 || len > MAX_OLD_FRAME) return;
  let req: unknown;
  try {
    req = oldPackr.unpack(Buffer.concat([head.subarray(4), await io.next(len - 4)]));
  } catch {
    return;
  }
  if (!Array.isArray(req) || req[0] !== 0 || typeof req[1] !== 'number') return;
  const err = new SystemError('EPROTO', `server speaks circuit wire version ${WIRE_VERSION}; this client is older (version 1): run the same version on both`);
  const body = oldPackr.pack([1, req[1], false, err.toWire()]);
  const frame = Buffer.alloc(4 + body.length);
  frame.writeUInt32BE(body.length, 0);
  body.copy(frame, 4);
  sock.end(frame);
  throw fault('EPROTO', 'peer speaks circuit wire version 1 (a request without a preamble); told it to upgrade');
}

const oldPackr = new Packr({ useRecords: false, moreTypes: false, int64AsType: 'number' } as never);

function preambleHead(): Buffer {
  const h = Buffer.alloc(8);
  h.writeUInt32BE(BODY_BYTES, 0);
  MAGIC.copy(h, 4);
  return h;
}

/** This side's preamble. */
export function preamble(role: Role, mode: number, version = WIRE_VERSION): Buffer {
  const b = Buffer.alloc(PREAMBLE_BYTES);
  preambleHead().copy(b, 0);
  b[8] = version;
  b[9] = ROLE_BYTE[role];
  b[10] = mode;
  return b;
}

function parsePreamble(b: Buffer): { version: number; role: number; mode: number } {
  return { version: b[8]!, role: b[9]!, mode: b[10]! };
}

const psks = new WeakMap<Buffer, Buffer>();

/** The TLS pre-shared key derived from the cluster key (never K itself). */
function pskOf(key: Buffer): Buffer {
  let p = psks.get(key);
  if (!p) {
    // node:crypto loads only with a key: a keyless CLI command never needs it (BENCHMARKS.md, #7).
    p = Buffer.from((require('node:crypto') as typeof import('node:crypto')).hkdfSync('sha256', key, Buffer.alloc(0), 'circuit/2 tls psk', 32));
    psks.set(key, p);
  }
  return p;
}

/** Resolves once TLS is up on either side; rejects with the TLS failure as a Fault. */
function tlsReady(s: tls.TLSSocket, role: Role): Promise<void> {
  return new Promise((resolve, reject) => {
    s.once(role === 'dialer' ? 'secureConnect' : 'secure', () => resolve());
    s.once('error', (e: NodeJS.ErrnoException) => reject(tlsFault(e)));
    s.once('close', () => reject(fault('ECONNRESET', 'connection closed during the handshake')));
  });
}

/** OpenSSL's reasons, said in our words where they mean "the other side has another key". */
function tlsFault(e: NodeJS.ErrnoException): Fault {
  const what = `${e.code ?? ''} ${e.message}`;
  if (/BINDER|DECRYPT|BAD_RECORD_MAC|alert (handshake failure|decrypt error|illegal parameter)|PSK/i.test(what)) {
    return fault('EACCES', 'peer does not hold the cluster key');
  }
  return fault('EPROTO', `TLS failed: ${e.message.replace(/^.*?:error:[0-9A-F]+:/, '')}`);
}

/** A handshake failure with its code, before it is shaped for the dialer or the listener. */
class Fault extends Error {
  constructor(readonly code: 'EACCES' | 'EPROTO' | 'ETIMEDOUT' | 'ECONNRESET', message: string) {
    super(message);
  }
}

function fault(code: Fault['code'], message: string): Fault {
  return new Fault(code, message);
}

function refusal(err: unknown, role: Role, peer: string): SystemError {
  if (err instanceof WireVersionError) return err;
  const f = err instanceof Fault ? err : fault('EPROTO', err instanceof Error ? err.message : String(err));
  if (role === 'dialer') return new SystemError('EACCES', DIAL_REFUSED, { cause: f });
  return new SystemError(f.code, `handshake from ${peer} refused: ${f.message}`, { cause: f });
}

/**
 * Exact reads from a socket in paused mode: `next(n)` resolves with exactly n bytes and leaves
 * everything after them in the socket. A stream that ends or fails first rejects.
 */
class ExactReader {
  #sock: net.Socket;
  #want: { size: number; resolve(b: Buffer): void; reject(e: Error): void } | null = null;
  #failure: Fault | null = null;
  #attached = true;

  constructor(sock: net.Socket) {
    this.#sock = sock;
    sock.on('readable', this.#pump);
    sock.on('end', this.#onEnd);
    sock.on('close', this.#onEnd);
    sock.on('error', this.#onError);
  }

  next(size: number): Promise<Buffer> {
    if (this.#failure) return Promise.reject(this.#failure);
    return new Promise((resolve, reject) => {
      this.#want = { size, resolve, reject };
      this.#pump();
    });
  }

  /** Stops listening and leaves the socket to its next reader. */
  detach(): void {
    if (!this.#attached) return;
    this.#attached = false;
    this.#sock.off('readable', this.#pump);
    this.#sock.off('end', this.#onEnd);
    this.#sock.off('close', this.#onEnd);
    this.#sock.off('error', this.#onError);
  }

  #pump = (): void => {
    const want = this.#want;
    if (!want || this.#failure) return;
    const chunk = this.#sock.read(want.size) as Buffer | null;
    if (chunk === null) {
      if (this.#sock.readableEnded) this.#onEnd();
      return;
    }
    if (chunk.length < want.size) return this.#fail(fault('ECONNRESET', 'connection closed during the handshake'));
    this.#want = null;
    want.resolve(chunk);
  };

  #onEnd = (): void => this.#fail(fault('ECONNRESET', 'connection closed during the handshake'));

  #onError = (err: Error): void => this.#fail(fault('ECONNRESET', `connection failed during the handshake: ${err.message}`));

  #fail(f: Fault): void {
    if (this.#failure) return;
    this.#failure = f;
    const want = this.#want;
    this.#want = null;
    want?.reject(f);
  }
}
