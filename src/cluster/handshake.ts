/**
 * The start of every keyed TCP connection: both ends prove they hold the cluster key, then
 * derive fresh per-direction session keys with which every frame body is sealed.
 *
 * Mechanism. Each message is a 4-byte big-endian length plus a body of at most 256 bytes.
 *   1. Both ends send a hello at once: "CRKT", version, role byte, 32 fresh random bytes.
 *   2. The transcript T is the dialer's hello followed by the listener's. An auth key
 *      A = HKDF-SHA256(K, "circuit/v1 auth") is derived from the long-term key K.
 *   3. The dialer sends HMAC-SHA256(A, "dialer proof" ‖ T). The listener checks it in constant
 *      time and only then sends HMAC-SHA256(A, "listener proof" ‖ T), which the dialer checks.
 *      A listener never answers a dialer that failed, so a prober learns nothing but a nonce.
 *   4. Session keys: HKDF-SHA256(K, salt = SHA-256(T), info = direction label), 32 bytes each.
 * Frames are then sealed with ChaCha20-Poly1305 under a 96-bit nonce of four zero bytes and a
 * 64-bit big-endian counter per direction. The counter is implicit (never sent), so a replayed,
 * reordered, dropped or altered frame fails to open. A replayed handshake fails at step 3
 * because the other end's nonce is fresh; a reflected one fails on the role byte and labels.
 *
 * The handshake reads exactly its own bytes (paused-mode `read(n)`), so nothing that follows
 * is consumed and `leftover` is always empty; it exists so callers may prepend it regardless.
 * Call handshake on a fresh socket, before attaching any reader, and attach one right after.
 */
import type * as net from 'node:net';
import {
  createCipheriv, createDecipheriv, createHash, createHmac, hkdfSync, randomBytes, timingSafeEqual,
} from 'node:crypto';
import { AppError, SystemError } from '../kit/errors';
import { systemClock, type Clock, type TimerHandle } from '../kit/clock';
import { MIN_KEY_BYTES } from './keys';

/** The version byte of this handshake and framing; a peer with another is refused. */
export const PROTOCOL_VERSION = 1;
/** Largest handshake message body; anything longer is refused before it is buffered. */
export const MAX_HANDSHAKE_MESSAGE = 256;
/** Bytes a sealed frame adds to its plaintext (the Poly1305 tag). */
export const SEAL_OVERHEAD = 16;
/** How long a handshake may take unless the caller says otherwise. */
export const DEFAULT_HANDSHAKE_TIMEOUT_MS = 5000;
/** The dialer's error text, the original's: a prober cannot tell a wrong key from no server. */
export const DIAL_REFUSED = 'addressed server is gone or authentication failed';

const MAGIC = Buffer.from('CRKT', 'latin1');
const NONCE_BYTES = 32;
const HELLO_BYTES = MAGIC.length + 2 + NONCE_BYTES;
const PROOF_BYTES = 32;
const ROLE_BYTE = { dialer: 0x44, listener: 0x4c } as const; // 'D', 'L'
const AEAD = 'chacha20-poly1305';

export type Role = 'dialer' | 'listener';

export interface HandshakeOptions {
  /** Whole-handshake deadline in ms (default 5000); a slow or silent peer is dropped. */
  timeoutMs?: number;
  /** Where the deadline's timer comes from; tests may pass a ManualClock. */
  clock?: Clock;
}

/** Seals outgoing and opens incoming frame bodies of one connection, in order. */
export interface SecureSession {
  /** Encrypts and authenticates one outgoing frame body; output is SEAL_OVERHEAD bytes longer. */
  seal(plain: Buffer): Buffer;
  /** Checks and decrypts the next incoming body; throws (EPROTO) on any tamper, replay, reorder. */
  open(sealed: Buffer): Buffer;
  /** Bytes read past the handshake that belong to the first frames (always empty here). */
  readonly leftover: Buffer;
}

/**
 * Runs the handshake on a connected socket. Resolves with the session; on any failure destroys
 * the socket and rejects with a SystemError: for a dialer always EACCES with DIAL_REFUSED (the
 * reason is the cause), for a listener EACCES, EPROTO or ETIMEDOUT with the reason, to be logged.
 */
export async function handshake(
  sock: net.Socket, key: Buffer, role: Role, opts: HandshakeOptions = {},
): Promise<SecureSession> {
  if (key.length < MIN_KEY_BYTES) {
    throw new AppError('EINVAL', `cluster key is ${key.length} bytes; at least ${MIN_KEY_BYTES} are required`);
  }
  const peer = `${sock.remoteAddress ?? '?'}:${sock.remotePort ?? '?'}`; // gone once destroyed
  const io = new MessageIO(sock, opts.clock ?? systemClock, opts.timeoutMs ?? DEFAULT_HANDSHAKE_TIMEOUT_MS);
  try {
    const session = await exchange(io, key, role);
    io.finish();
    return session;
  } catch (err) {
    io.abort();
    throw refusal(err, role, peer);
  }
}

/** Steps 1 to 4 of the module comment, over messages. */
async function exchange(io: MessageIO, key: Buffer, role: Role): Promise<SecureSession> {
  const mine = makeHello(role, randomBytes(NONCE_BYTES));
  io.send(mine);
  const theirs = await io.next(HELLO_BYTES);
  checkHello(theirs, role === 'dialer' ? 'listener' : 'dialer');
  if (theirs.subarray(-NONCE_BYTES).equals(mine.subarray(-NONCE_BYTES))) throw fault('EPROTO', 'peer echoed our nonce');
  const transcript = role === 'dialer' ? Buffer.concat([mine, theirs]) : Buffer.concat([theirs, mine]);
  const auth = derive(key, Buffer.alloc(0), 'circuit/v1 auth');
  const dialerProof = proof(auth, 'dialer proof', transcript);
  const listenerProof = proof(auth, 'listener proof', transcript);
  if (role === 'dialer') {
    io.send(dialerProof);
    checkProof(await io.next(PROOF_BYTES), listenerProof);
  } else {
    checkProof(await io.next(PROOF_BYTES), dialerProof);
    io.send(listenerProof);
  }
  const salt = createHash('sha256').update(transcript).digest();
  const d2l = derive(key, salt, 'circuit/v1 dialer to listener');
  const l2d = derive(key, salt, 'circuit/v1 listener to dialer');
  return role === 'dialer' ? new AeadSession(d2l, l2d) : new AeadSession(l2d, d2l);
}

function makeHello(role: Role, nonce: Buffer): Buffer {
  return Buffer.concat([MAGIC, Buffer.from([PROTOCOL_VERSION, ROLE_BYTE[role]]), nonce]);
}

function checkHello(hello: Buffer, expected: Role): void {
  if (!hello.subarray(0, MAGIC.length).equals(MAGIC)) throw fault('EPROTO', 'peer is not speaking the circuit handshake');
  const version = hello[MAGIC.length];
  if (version !== PROTOCOL_VERSION) throw fault('EPROTO', `peer speaks protocol version ${version}, not ${PROTOCOL_VERSION}`);
  if (hello[MAGIC.length + 1] !== ROLE_BYTE[expected]) throw fault('EPROTO', `peer does not act as the ${expected}`);
}

function checkProof(got: Buffer, want: Buffer): void {
  if (!timingSafeEqual(got, want)) throw fault('EACCES', 'peer does not hold the cluster key');
}

function derive(key: Buffer, salt: Buffer, label: string): Buffer {
  return Buffer.from(hkdfSync('sha256', key, salt, label, 32));
}

function proof(auth: Buffer, label: string, transcript: Buffer): Buffer {
  return createHmac('sha256', auth).update(label).update(transcript).digest();
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
  const f = err instanceof Fault ? err : fault('EPROTO', err instanceof Error ? err.message : String(err));
  if (role === 'dialer') return new SystemError('EACCES', DIAL_REFUSED, { cause: f });
  return new SystemError(f.code, `handshake from ${peer} refused: ${f.message}`, { cause: f });
}

/**
 * Length-prefixed handshake messages on a socket in paused mode, with one deadline for all of
 * them. It reads exactly the bytes of the messages asked for and leaves the rest in the socket.
 */
class MessageIO {
  #sock: net.Socket;
  #clock: Clock;
  #timer: TimerHandle | undefined;
  #want: { size: number; resolve(b: Buffer): void; reject(e: Error): void } | null = null;
  #bodyLen = -1;
  #failure: Fault | null = null;

  constructor(sock: net.Socket, clock: Clock, timeoutMs: number) {
    this.#sock = sock;
    this.#clock = clock;
    this.#timer = clock.setTimeout(() => this.#fail(fault('ETIMEDOUT', `handshake did not finish in ${timeoutMs} ms`)), timeoutMs);
    sock.on('readable', this.#pump);
    sock.on('end', this.#onEnd);
    sock.on('close', this.#onEnd);
    sock.on('error', this.#onError);
  }

  send(body: Buffer): void {
    const head = Buffer.alloc(4);
    head.writeUInt32BE(body.length, 0);
    this.#sock.write(Buffer.concat([head, body]));
  }

  /** The next message, which must be exactly `size` bytes long. */
  next(size: number): Promise<Buffer> {
    if (this.#failure) return Promise.reject(this.#failure);
    return new Promise((resolve, reject) => {
      this.#want = { size, resolve, reject };
      this.#pump();
    });
  }

  /** Success: stop listening and leave the socket to its next reader. */
  finish(): void {
    this.#detach();
  }

  /** Failure: stop listening and drop the connection. */
  abort(): void {
    this.#detach();
    this.#sock.on('error', () => undefined); // late errors of a dropped socket are of no interest
    this.#sock.destroy();
  }

  #detach(): void {
    this.#clock.clearTimeout(this.#timer);
    this.#sock.off('readable', this.#pump);
    this.#sock.off('end', this.#onEnd);
    this.#sock.off('close', this.#onEnd);
    this.#sock.off('error', this.#onError);
  }

  #pump = (): void => {
    const want = this.#want;
    if (!want || this.#failure) return;
    if (this.#bodyLen < 0) {
      const head = this.#take(4);
      if (!head) return;
      const len = head.readUInt32BE(0);
      if (len > MAX_HANDSHAKE_MESSAGE) return this.#fail(fault('EPROTO', `handshake message of ${len} bytes is too long`));
      if (len !== want.size) return this.#fail(fault('EPROTO', `handshake message of ${len} bytes, expected ${want.size}`));
      this.#bodyLen = len;
    }
    const body = this.#take(this.#bodyLen);
    if (!body) return;
    this.#bodyLen = -1;
    this.#want = null;
    want.resolve(body);
  };

  /** Exactly n bytes, or null until they have arrived; a stream that ends short is a failure. */
  #take(n: number): Buffer | null {
    const chunk = this.#sock.read(n) as Buffer | null;
    if (chunk === null) {
      if (this.#sock.readableEnded) this.#onEnd();
      return null;
    }
    if (chunk.length < n) {
      this.#fail(fault('ECONNRESET', 'connection closed during the handshake'));
      return null;
    }
    return chunk;
  }

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

/** Frame sealing with one key and one implicit counter per direction. */
class AeadSession implements SecureSession {
  readonly leftover = Buffer.alloc(0);
  #sendKey: Buffer;
  #recvKey: Buffer;
  #sent = 0;
  #received = 0;
  #broken = false;

  constructor(sendKey: Buffer, recvKey: Buffer) {
    this.#sendKey = sendKey;
    this.#recvKey = recvKey;
  }

  seal(plain: Buffer): Buffer {
    const c = createCipheriv(AEAD, this.#sendKey, counterNonce(this.#sent), { authTagLength: SEAL_OVERHEAD });
    this.#sent++;
    const body = c.update(plain);
    c.final();
    return Buffer.concat([body, c.getAuthTag()]);
  }

  open(sealed: Buffer): Buffer {
    if (this.#broken) throw sealError('the connection already failed authentication');
    if (sealed.length < SEAL_OVERHEAD) return this.#refuse('sealed frame is shorter than its tag');
    const tagAt = sealed.length - SEAL_OVERHEAD;
    const d = createDecipheriv(AEAD, this.#recvKey, counterNonce(this.#received), { authTagLength: SEAL_OVERHEAD });
    d.setAuthTag(sealed.subarray(tagAt));
    const plain = d.update(sealed.subarray(0, tagAt));
    try {
      d.final();
    } catch {
      return this.#refuse('sealed frame failed authentication (altered, replayed, reordered or dropped)');
    }
    this.#received++;
    return plain;
  }

  #refuse(why: string): never {
    this.#broken = true;
    throw sealError(why);
  }
}

function sealError(why: string): SystemError {
  return new SystemError('EPROTO', why);
}

/**
 * Four zero bytes and a 64-bit big-endian counter. The counter is a JS number, so a direction
 * is good for 2^53 frames; at that point it throws rather than ever reuse a nonce.
 */
function counterNonce(n: number): Buffer {
  if (n >= Number.MAX_SAFE_INTEGER) throw sealError('frame counter exhausted; reconnect');
  const nonce = Buffer.alloc(12);
  nonce.writeUInt32BE(Math.floor(n / 0x1_0000_0000), 4);
  nonce.writeUInt32BE(n >>> 0, 8);
  return nonce;
}
