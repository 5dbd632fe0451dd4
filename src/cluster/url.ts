import os = require('node:os');
import { AppError } from '../kit/errors';

/**
 * A circuit URL names one incarnation of one process: `circuit://HOST:PORT/PID/Q<16 hex>`
 * (docs/cli.md). A dialler says which PID and worker id it expects, and a server refuses a
 * session meant for another incarnation, so a stale URL fails even if the port was reused.
 */
export interface CircuitUrl {
  host: string;
  port: number;
  pid: number;
  worker: string;
}

export function newWorkerId(): string {
  // node:crypto is loaded here rather than at the top: the CLI parses URLs but never makes a
  // worker id, and loading crypto is a measurable part of its start-up (BENCHMARKS.md, #7).
  const b = (require('node:crypto') as typeof import('node:crypto')).randomBytes(8);
  b[0] &= 0x7f; // 63 bits, as the original
  return 'Q' + b.toString('hex');
}

export function formatUrl(u: CircuitUrl): string {
  const host = u.host.includes(':') && !u.host.startsWith('[') ? `[${u.host}]` : u.host;
  return `circuit://${host}:${u.port}/${u.pid}/${u.worker}`;
}

export function parseUrl(s: string): CircuitUrl {
  const bad = (why: string) => new AppError('EINVAL', `argument ${JSON.stringify(s)} is not a valid circuit address: ${why}`);
  const m = /^circuit:\/\/(\[[^\]]+\]|[^/:?#]+):(\d+)(\/[^?#]*)?(?:[?#].*)?$/.exec(s.trim());
  if (!m) throw bad('want circuit://HOST:PORT/PID/QID');
  const port = Number(m[2]);
  if (port < 1 || port > 65535) throw bad('port out of range');
  const parts = (m[3] ?? '').split('/');
  if (parts.length !== 3 || parts[0] !== '') throw bad('want the path /PID/QID');
  if (!/^\d+$/.test(parts[1])) throw bad('PID is not a number');
  if (!/^Q[0-9a-fA-F]{16}$/.test(parts[2])) throw bad('worker id is not Q and 16 hex digits');
  const host = m[1].startsWith('[') ? m[1].slice(1, -1) : m[1];
  return { host, port, pid: Number(parts[1]), worker: 'Q' + parts[2].slice(1).toLowerCase() };
}

/** Parses `HOST:PORT` (IPv6 in brackets); the port is required, as in the original. */
export function parseHostPort(s: string): { host: string; port: number } {
  const m = /^(\[[^\]]+\]|[^:]*):(\d+)$/.exec(s.trim());
  if (!m) throw new AppError('EINVAL', `address ${JSON.stringify(s)}: missing port in address (want HOST:PORT)`);
  const port = Number(m[2]);
  if (port > 65535) throw new AppError('EINVAL', `address ${JSON.stringify(s)}: port out of range`);
  const host = m[1].startsWith('[') ? m[1].slice(1, -1) : m[1] || '0.0.0.0';
  return { host, port };
}

/**
 * The address `--if IFACE` binds: the interface's first IPv4 address, else its first IPv6 one
 * (a global one before a link-local one, which gets the interface as its scope). A name that is
 * not an interface, or one without an address, is a clear error.
 */
export function interfaceAddress(name: string, ifaces: NodeJS.Dict<os.NetworkInterfaceInfo[]> = os.networkInterfaces()): string {
  const list = ifaces[name];
  if (!list) {
    const have = Object.keys(ifaces).sort().join(', ') || 'none';
    throw new AppError('EINVAL', `interface ${JSON.stringify(name)} not found (this host has: ${have})`);
  }
  const v4 = list.find((a) => a.family === 'IPv4');
  if (v4) return v4.address;
  const v6 = list.filter((a) => a.family === 'IPv6');
  const global = v6.find((a) => !/^fe80:/i.test(a.address));
  if (global) return global.address;
  if (v6[0]) return `${v6[0].address}%${name}`;
  throw new AppError('EINVAL', `interface ${JSON.stringify(name)} has no IP address`);
}

/**
 * A join target: a circuit URL (only its host and port are used), `HOST:PORT` with an IP
 * address, or `NAME:PORT` with a DNS name, every address of which is tried.
 */
export function parseJoinTarget(s: string): { host: string; port: number } {
  const t = s.trim();
  if (t.startsWith('circuit://')) {
    const u = parseUrl(t);
    return { host: u.host, port: u.port };
  }
  const m = /^(\[[^\]]+\]|[^:/\s]+):(\d+)$/.exec(t);
  if (!m) throw new AppError('EINVAL', `argument ${JSON.stringify(s)} is not a valid join address: want circuit://HOST:PORT/PID/QID, HOST:PORT or NAME:PORT`);
  const port = Number(m[2]);
  if (port < 1 || port > 65535) throw new AppError('EINVAL', `argument ${JSON.stringify(s)} is not a valid join address: port out of range`);
  return { host: m[1].startsWith('[') ? m[1].slice(1, -1) : m[1], port };
}

/** HOST:PORT, with an IPv6 host in brackets. */
export function hostPort(host: string, port: number): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}
