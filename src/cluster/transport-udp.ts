/**
 * PacketTransport over UDP (node:dgram). Addresses are "host:port" (IPv6 hosts in brackets).
 * Open with `await UdpTransport.bind("127.0.0.1:0")`; the bound address (with the real port)
 * is `addr`. Send errors are swallowed (best effort) but counted. The socket keeps the process
 * alive until close(), like any server socket.
 */
import dgram = require('node:dgram');
import { SystemError } from '../kit/errors';
import type { PacketTransport } from './transport';

/** Splits "host:port" or "[v6]:port". */
export function splitHostPort(addr: string): { host: string; port: number } {
  const m = /^\[([^\]]+)\]:(\d+)$/.exec(addr) ?? /^([^:]*):(\d+)$/.exec(addr);
  if (!m) throw new SystemError('EINVAL', `bad packet address: ${addr}`);
  return { host: m[1] || '0.0.0.0', port: Number(m[2]) };
}

function joinHostPort(host: string, port: number): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}

export class UdpTransport implements PacketTransport {
  readonly addr: string;
  /** Sends that failed locally (closed socket, no route); the protocol tolerates loss. */
  sendErrors = 0;
  readonly #sock: dgram.Socket;
  #closed = false;
  #handler: ((from: string, buf: Buffer) => void) | undefined;

  private constructor(sock: dgram.Socket, addr: string) {
    this.#sock = sock;
    this.addr = addr;
    sock.on('message', (buf, rinfo) => this.#handler?.(joinHostPort(rinfo.address, rinfo.port), buf));
    sock.on('error', () => {
      this.sendErrors++;
    });
  }

  /** Binds a socket at "host:port" (port 0 picks a free one). */
  static bind(addr: string): Promise<UdpTransport> {
    const { host, port } = splitHostPort(addr);
    const sock = dgram.createSocket({ type: host.includes(':') ? 'udp6' : 'udp4' });
    return new Promise((resolve, reject) => {
      const fail = (err: Error) => reject(new SystemError('EIO', `cannot bind udp ${addr}: ${err.message}`, { cause: err }));
      sock.once('error', fail);
      sock.bind(port, host, () => {
        sock.off('error', fail);
        const a = sock.address();
        resolve(new UdpTransport(sock, joinHostPort(host, a.port)));
      });
    });
  }

  send(to: string, buf: Buffer): void {
    if (this.#closed) return;
    let dst: { host: string; port: number };
    try {
      dst = splitHostPort(to);
    } catch {
      this.sendErrors++;
      return;
    }
    this.#sock.send(buf, dst.port, dst.host, (err) => {
      if (err) this.sendErrors++;
    });
  }

  onPacket(handler: (from: string, buf: Buffer) => void): void {
    this.#handler = handler;
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#sock.close();
  }
}
