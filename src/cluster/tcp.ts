import net = require('node:net');
import { Session, type SessionOptions } from './session';
import { SystemError } from '../kit/errors';
import { dataHandshake, handshake, isDataConnection, WireVersionError, type HandshakeOptions, type Role } from './handshake';

/**
 * TCP endpoints for sessions. Every connection starts with the handshake (src/cluster/handshake.ts:
 * the versioned preamble, then TLS with a key), which hands back the socket the session runs on.
 *
 * A listener bounds what strangers can hold before they have finished it: at most
 * `maxPending` connections are in their handshake at once, at most `maxPendingPerAddr` of them
 * from one address, and each has `handshakeMs` to finish. A new connection over a cap closes the
 * oldest unfinished one of its address (or, over the global cap, of the address with the most),
 * so a flood of silent connections cannot lock out a client that completes its handshake in
 * milliseconds, and the descriptors held stay bounded.
 */
export type Handshake = (sock: net.Socket, role: Role, opts?: Pick<HandshakeOptions, 'timeoutMs' | 'onData'>) => Promise<net.Socket>;

export interface Endpoint {
  host: string;
  port: number;
  close(): Promise<void>;
}

export interface ListenLimits {
  /** Connections in their handshake at once, from everyone (default 256). */
  maxPending: number;
  /** Connections in their handshake at once, from one address (default 32). */
  maxPendingPerAddr: number;
  /** Time a connection has to finish its handshake, ms (default 3000). */
  handshakeMs: number;
}

export const defaultListenLimits: ListenLimits = { maxPending: 256, maxPendingPerAddr: 32, handshakeMs: 3000 };

export interface ListenOptions extends SessionOptions {
  handshake?: Handshake;
  limits?: Partial<ListenLimits>;
  /** Each refused connection, with the reason and the peer's address (see refusal-log.ts). */
  onError?: (e: Error, addr: string) => void;
  /** Takes data connections (src/node/push.ts) on a listener without a key: see handshake.ts. */
  onData?: HandshakeOptions['onData'];
}

/** Connections still in their handshake, oldest first, with a count per address. */
class Pending {
  readonly #order = new Map<net.Socket, string>();
  readonly #perAddr = new Map<string, number>();
  readonly #evicted = new Map<net.Socket, string>();

  get size(): number {
    return this.#order.size;
  }

  count(addr: string): number {
    return this.#perAddr.get(addr) ?? 0;
  }

  add(sock: net.Socket, addr: string): void {
    this.#order.set(sock, addr);
    this.#perAddr.set(addr, this.count(addr) + 1);
  }

  delete(sock: net.Socket): void {
    const addr = this.#order.get(sock);
    if (addr === undefined) return;
    this.#order.delete(sock);
    const n = this.count(addr) - 1;
    if (n > 0) this.#perAddr.set(addr, n);
    else this.#perAddr.delete(addr);
  }

  /** The address holding the most unfinished handshakes. */
  busiest(): string | undefined {
    let best: string | undefined;
    for (const [a, n] of this.#perAddr) if (best === undefined || n > this.count(best)) best = a;
    return best;
  }

  /** Closes the oldest unfinished connection of addr, remembering why for its refusal line. */
  evictOldest(addr: string, why: string): void {
    for (const [sock, a] of this.#order) {
      if (a !== addr) continue;
      this.delete(sock);
      this.#evicted.set(sock, why);
      sock.destroy();
      return;
    }
  }

  /** Why a connection was evicted (and forgets it), or undefined. */
  evictedWhy(sock: net.Socket): string | undefined {
    const why = this.#evicted.get(sock);
    this.#evicted.delete(sock);
    return why;
  }
}

export function listen(host: string, port: number, onSession: (s: Session) => void, opts: ListenOptions = {}): Promise<Endpoint> {
  const limits = { ...defaultListenLimits, ...opts.limits };
  const shake = opts.handshake ?? plainHandshake;
  const sockets = new Set<net.Socket>();
  const pending = new Pending();
  const server = net.createServer(async (sock) => {
    sockets.add(sock);
    sock.on('close', () => sockets.delete(sock));
    sock.on('error', () => {});
    const addr = sock.remoteAddress ?? 'local';
    if (pending.count(addr) >= limits.maxPendingPerAddr) {
      pending.evictOldest(addr, `closed: more than ${limits.maxPendingPerAddr} unauthenticated connections from ${addr}`);
    } else if (pending.size >= limits.maxPending) {
      const busiest = pending.busiest()!;
      pending.evictOldest(busiest, `closed: more than ${limits.maxPending} unauthenticated connections (${pending.count(busiest)} from ${busiest})`);
    }
    pending.add(sock, addr);
    try {
      const s = await shake(sock, 'listener', { timeoutMs: limits.handshakeMs, onData: opts.onData });
      pending.delete(sock);
      if (isDataConnection(s)) return; // onData's now
      onSession(new Session(s, opts));
    } catch (e) {
      pending.delete(sock);
      const why = pending.evictedWhy(sock);
      opts.onError?.(why ? new SystemError('ECONNRESET', `connection from ${addr} ${why}`) : (e as Error), addr);
      sock.destroy();
    }
  });
  return new Promise((resolve, reject) => {
    server.once('error', (e: NodeJS.ErrnoException) =>
      reject(new SystemError(e.code === 'EADDRINUSE' ? 'EBUSY' : 'EIO', `cannot listen on ${host}:${port}: ${e.message}`, { cause: e })),
    );
    server.listen({ port, host, backlog: 1024 }, () => {
      const a = server.address() as net.AddressInfo;
      resolve({
        host: a.address,
        port: a.port,
        close: () =>
          new Promise<void>((r) => {
            for (const s of sockets) s.destroy();
            server.close(() => r());
          }),
      });
    });
  });
}

export function dial(
  host: string,
  port: number,
  opts: SessionOptions & { handshake?: Handshake; timeoutMs?: number } = {},
): Promise<Session> {
  const shake = opts.handshake ?? plainHandshake;
  return new Promise((resolve, reject) => {
    const sock = net.connect({ host, port });
    const fail = (e: Error) => {
      sock.destroy();
      // A peer of another wire version is said as it is; everything else looks alike to a prober.
      if (e instanceof WireVersionError) return reject(e);
      reject(new SystemError('EHOSTDOWN', `addressed server is gone or authentication failed`, { cause: e }));
    };
    const timeoutMs = opts.timeoutMs ?? 5000;
    const timer = setTimeout(() => fail(new Error('connect timed out')), timeoutMs);
    sock.once('error', (e) => {
      clearTimeout(timer);
      fail(e);
    });
    sock.once('connect', async () => {
      try {
        const s = await shake(sock, 'dialer', { timeoutMs });
        clearTimeout(timer);
        sock.removeAllListeners('error');
        sock.on('error', () => {});
        resolve(new Session(s, opts));
      } catch (e) {
        clearTimeout(timer);
        fail(e as Error);
      }
    });
  });
}

/** A data connection (src/node/push.ts) to host:port with a token its server handed out: the raw socket. */
export function dialData(host: string, port: number, token: Buffer, timeoutMs = 5000): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const sock = net.connect({ host, port, noDelay: true });
    sock.once('error', (e) => reject(new SystemError('EHOSTDOWN', `data connection to ${host}:${port} failed: ${e.message}`, { cause: e })));
    sock.once('connect', () => {
      dataHandshake(sock, token, timeoutMs).then((s) => {
        s.removeAllListeners('error');
        s.on('error', () => {});
        resolve(s);
      }, reject);
    });
  });
}

/** The handshake without a key: the versioned preamble, then plaintext frames. */
export const plainHandshake: Handshake = (sock, role, opts) => handshake(sock, null, role, opts);

/** The handshake for a cluster key (TLS 1.3 with a PSK derived from it), or the plain one. */
export function keyedHandshake(key: Buffer | null): Handshake {
  if (!key) return plainHandshake;
  return (sock, role, opts) => handshake(sock, key, role, opts);
}
