/**
 * Multicast discovery (docs/mesh.md, with the original's bugs fixed). Nothing here runs unless asked
 * (`--discover GROUP:PORT` or $CIRCUIT_DISCOVER).
 *
 * A server announces `{origin: "server", id, url}` to the group at once, then after 1 s, 1.4 s,
 * 1.96 s, … (×1.4) up to `slowMs`, then every `slowMs` forever, so two halves of a healed
 * partition find each other again. Every server datagram it hears from another id is reported
 * (the mesh joins it). A client sends `{origin: "client"}` queries and every server that hears
 * one answers by unicast to the query's source with its own announcement. An announced host that
 * is unspecified (0.0.0.0, ::) is replaced by the datagram's source address.
 *
 * Datagrams are wrapped by discovery-mac.ts: with a cluster key they carry a MAC, and a keyed
 * side drops plain datagrams (and the reverse). Multicast goes out on one interface only, named
 * by its address (`GROUP:PORT@IFADDR`, or the server's own address), with TTL 1.
 */
import dgram = require('node:dgram');
import os = require('node:os');
import { openDatagram, ReplayWindow, sealDatagram } from './discovery-mac';
import { AppError, SystemError } from '../kit/errors';
import { systemClock, type Clock, type TimerHandle } from '../kit/clock';

export interface Announcement {
  id: string;
  url: string;
}

export interface GroupSpec {
  group: string;
  port: number;
  /** The address of the interface to send and listen on; absent: chosen by the caller. */
  iface?: string;
}

/** Announcement pacing: first gaps grow ×factor from initialMs up to slowMs, then stay there. */
export interface DiscoverySchedule {
  initialMs: number;
  factor: number;
  slowMs: number;
}

export const defaultSchedule: Readonly<DiscoverySchedule> = Object.freeze({ initialMs: 1000, factor: 1.4, slowMs: 30_000 });

/** Largest datagram read; the original's receive buffer. */
const MAX_DATAGRAM = 7000;

/** Parses `GROUP:PORT` or `GROUP:PORT@IFADDR` (IPv4 multicast only). */
export function parseGroup(spec: string): GroupSpec {
  const m = /^(\d+\.\d+\.\d+\.\d+):(\d+)(?:@(\d+\.\d+\.\d+\.\d+))?$/.exec(spec.trim());
  const bad = (why: string) => new AppError('EINVAL', `discovery address ${JSON.stringify(spec)}: ${why}`);
  if (!m) throw bad('want GROUP:PORT or GROUP:PORT@INTERFACE-ADDRESS (IPv4)');
  const first = Number(m[1].split('.')[0]);
  if (first < 224 || first > 239) throw bad('not a multicast group (224.0.0.0/4)');
  const port = Number(m[2]);
  if (port < 1 || port > 65535) throw bad('port out of range');
  return { group: m[1], port, iface: m[3] };
}

/** The gap before announcement number n+1 (n from 0). */
export function announceGap(n: number, s: DiscoverySchedule = defaultSchedule): number {
  return Math.min(s.slowMs, Math.round(s.initialMs * Math.pow(s.factor, n)));
}

/** Replaces an unspecified host in a circuit URL by the address the datagram came from. */
export function fixHost(url: string, from: string): string {
  return url.replace(/^circuit:\/\/(0\.0\.0\.0|\[::\]|\[0:0:0:0:0:0:0:0\]):/, () => {
    const h = from.includes(':') ? `[${from}]` : from;
    return `circuit://${h}:`;
  });
}

interface Payload {
  origin: 'server' | 'client';
  id?: string;
  url?: string;
}

function encode(key: Buffer | null, p: Payload): Buffer {
  return sealDatagram(key, Buffer.from(JSON.stringify(p)), Date.now());
}

function decode(key: Buffer | null, buf: Buffer, seen: ReplayWindow): Payload | null {
  const raw = openDatagram(key, buf, Date.now(), undefined, seen);
  if (!raw) return null;
  try {
    const p = JSON.parse(raw.toString()) as Payload;
    if (p.origin !== 'server' && p.origin !== 'client') return null;
    if (p.origin === 'server' && (typeof p.id !== 'string' || typeof p.url !== 'string')) return null;
    return p;
  } catch {
    return null;
  }
}

export interface DiscoveryOptions {
  spec: GroupSpec & { iface: string };
  key: Buffer | null;
  self: Announcement;
  /** Another server announced itself (its URL with the host fixed). */
  onServer: (a: Announcement) => void;
  schedule?: DiscoverySchedule;
  clock?: Clock;
  log?: (line: string) => void;
}

/** A server's discovery: announces itself, answers client queries, reports other servers. */
export class Discovery {
  readonly #sock: dgram.Socket;
  readonly #opts: DiscoveryOptions;
  readonly #clock: Clock;
  readonly #seen = new ReplayWindow();
  #timer: TimerHandle | undefined;
  #closed = false;
  /** Announcements sent so far. */
  sent = 0;

  private constructor(sock: dgram.Socket, opts: DiscoveryOptions) {
    this.#sock = sock;
    this.#opts = opts;
    this.#clock = opts.clock ?? systemClock;
    sock.on('message', (buf, rinfo) => this.#onMessage(buf, rinfo));
    sock.on('error', (e) => opts.log?.(`multicast discovery error: ${e.message}`));
  }

  static async start(opts: DiscoveryOptions): Promise<Discovery> {
    const { group, port, iface } = opts.spec;
    const sock = dgram.createSocket({ type: 'udp4', reuseAddr: true });
    await new Promise<void>((resolve, reject) => {
      const fail = (e: Error) => reject(new SystemError('EIO', `problem listening to udp multicast ${group}:${port}: ${e.message}`, { cause: e }));
      sock.once('error', fail);
      sock.bind(port, '0.0.0.0', () => {
        sock.off('error', fail);
        try {
          sock.setMulticastInterface(iface);
          sock.setMulticastTTL(1);
          sock.setMulticastLoopback(true);
          sock.addMembership(group, iface);
        } catch (e) {
          sock.close();
          return fail(e as Error);
        }
        resolve();
      });
    });
    sock.unref();
    const d = new Discovery(sock, opts);
    d.#announce(0);
    return d;
  }

  #announce(n: number): void {
    if (this.#closed) return;
    this.#send({ origin: 'server', ...this.#opts.self }, this.#opts.spec.port, this.#opts.spec.group);
    this.sent++;
    this.#timer = this.#clock.setTimeout(() => this.#announce(n + 1), announceGap(n, this.#opts.schedule));
  }

  #send(p: Payload, port: number, host: string): void {
    if (this.#closed) return;
    this.#sock.send(encode(this.#opts.key, p), port, host, (e) => {
      if (e && !this.#closed) this.#opts.log?.(`multicast scatter error: ${e.message}`);
    });
  }

  #onMessage(buf: Buffer, rinfo: dgram.RemoteInfo): void {
    if (this.#closed || buf.length > MAX_DATAGRAM) return;
    const p = decode(this.#opts.key, buf, this.#seen);
    if (!p) return;
    if (p.origin === 'client') {
      this.#send({ origin: 'server', ...this.#opts.self }, rinfo.port, rinfo.address);
      return;
    }
    if (p.id === this.#opts.self.id) return; // our own announcement, looped back
    this.#opts.onServer({ id: p.id!, url: fixHost(p.url!, rinfo.address) });
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#clock.clearTimeout(this.#timer);
    try {
      this.#sock.close();
    } catch {
      // already closed
    }
  }
}

/** IPv4 addresses of this host's interfaces, loopback included: where a client asks by default. */
function localIfaces(): string[] {
  const out: string[] = [];
  for (const list of Object.values(os.networkInterfaces())) for (const a of list ?? []) if (a.family === 'IPv4') out.push(a.address);
  return out;
}

/**
 * A client's discovery: queries the group (on the spec's interface, or on every IPv4 interface
 * of this host) with backoff, and resolves with the URL of the first server that answers.
 * Fails with ETIMEDOUT after timeoutMs.
 */
export async function discoverServer(specText: string, timeoutMs: number, key: Buffer | null): Promise<string> {
  const spec = parseGroup(specText);
  const ifaces = spec.iface ? [spec.iface] : localIfaces();
  const socks: dgram.Socket[] = [];
  const seen = new ReplayWindow();
  return new Promise<string>((resolve, reject) => {
    let done = false;
    let n = 0;
    let timer: NodeJS.Timeout | undefined;
    const finish = (err: Error | null, url?: string) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      clearTimeout(deadline);
      for (const s of socks) s.close();
      if (err) reject(err);
      else resolve(url!);
    };
    const deadline = setTimeout(
      () => finish(new SystemError('ETIMEDOUT', `no server answered on ${spec.group}:${spec.port} within ${timeoutMs} ms`)),
      timeoutMs,
    );
    const query = () => {
      for (const s of socks) s.send(encode(key, { origin: 'client' }), spec.port, spec.group, () => {});
      timer = setTimeout(query, announceGap(n++));
    };
    let pending = ifaces.length;
    if (pending === 0) return finish(new SystemError('EHOSTDOWN', 'no IPv4 interface to query for servers'));
    for (const iface of ifaces) {
      const s = dgram.createSocket('udp4');
      s.on('error', () => {});
      s.on('message', (buf, rinfo) => {
        const p = decode(key, buf, seen);
        if (p?.origin === 'server' && p.url) finish(null, fixHost(p.url, rinfo.address));
      });
      s.bind(0, iface, () => {
        try {
          s.setMulticastInterface(iface);
          s.setMulticastTTL(1);
          s.setMulticastLoopback(true);
          socks.push(s);
        } catch {
          s.close();
        }
        if (--pending === 0) {
          if (socks.length === 0) finish(new SystemError('EHOSTDOWN', 'no interface could send multicast'));
          else query();
        }
      });
    }
  });
}
