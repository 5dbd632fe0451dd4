import * as net from 'node:net';
import { Session, type SessionOptions, type Sealer } from './session';
import { SystemError } from '../kit/errors';

/**
 * TCP endpoints for sessions. The handshake hook runs on the raw socket before the first frame
 * (src/cluster/handshake.ts: key proof and session keys); without a key it is skipped.
 */
export type Handshake = (sock: net.Socket, role: 'dialer' | 'listener') => Promise<{ sealer?: Sealer; leftover?: Buffer }>;

export interface Endpoint {
  host: string;
  port: number;
  close(): Promise<void>;
}

export function listen(
  host: string,
  port: number,
  onSession: (s: Session) => void,
  opts: SessionOptions & { handshake?: Handshake; onError?: (e: Error) => void } = {},
): Promise<Endpoint> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer(async (sock) => {
    sockets.add(sock);
    sock.on('close', () => sockets.delete(sock));
    sock.on('error', () => {});
    try {
      const hs = opts.handshake ? await opts.handshake(sock, 'listener') : {};
      onSession(new Session(sock, { ...opts, ...hs }));
    } catch (e) {
      opts.onError?.(e as Error);
      sock.destroy();
    }
  });
  return new Promise((resolve, reject) => {
    server.once('error', (e: NodeJS.ErrnoException) =>
      reject(new SystemError(e.code === 'EADDRINUSE' ? 'EBUSY' : 'EIO', `cannot listen on ${host}:${port}: ${e.message}`, { cause: e })),
    );
    server.listen(port, host, () => {
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
  return new Promise((resolve, reject) => {
    const sock = net.connect({ host, port });
    const fail = (e: Error) => {
      sock.destroy();
      reject(new SystemError('EHOSTDOWN', `addressed server is gone or authentication failed`, { cause: e }));
    };
    const timer = setTimeout(() => fail(new Error('connect timed out')), opts.timeoutMs ?? 5000);
    sock.once('error', (e) => {
      clearTimeout(timer);
      fail(e);
    });
    sock.once('connect', async () => {
      try {
        const hs = opts.handshake ? await opts.handshake(sock, 'dialer') : {};
        clearTimeout(timer);
        sock.removeAllListeners('error');
        resolve(new Session(sock, { ...opts, ...hs }));
      } catch (e) {
        clearTimeout(timer);
        fail(e as Error);
      }
    });
  });
}

/** The handshake for a cluster key: proof of possession, then sealed frames; none without a key. */
export function keyedHandshake(key: Buffer | null): Handshake | undefined {
  if (!key) return undefined;
  return async (sock, role) => {
    const { handshake } = await import('./handshake');
    const s = await handshake(sock, key, role);
    return { sealer: s, leftover: s.leftover };
  };
}
