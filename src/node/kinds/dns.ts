import dgram = require('node:dgram');
import net = require('node:net');
import type dns2 from 'dns2';
import type { ElementContext, ElementState, KindModule } from '../element';
import { AppError, E } from '../../kit/errors';
import {
  TYPE_CODES, ZoneError, asciiLower, canonicalIPv6, ipv6Groups, nameKey, parseZone, present,
  type ZoneRecord,
} from '../zone';

/**
 * The DNS element: a small authoritative name server for the records set on it.
 *
 * It listens on one address with a UDP socket and a TCP server bound to the same port (UDP
 * first; with port 0 the TCP side takes the port UDP got, retrying on a clash). Packets are
 * framed and pre-checked here and decoded and encoded with dns2's Packet: dns2's own servers
 * hand any header to Packet.parse, whose record counts a 20-byte packet can set to 65535 each,
 * which costs seconds of CPU; they also do not say which peer sent a bad packet.
 *
 * Answers (see docs/dns.md): names match case-insensitively; every record of the asked type,
 * ANY gives all of the name's records, a CNAME stands in for other types (followed through the
 * element's own records), a known name without that type is an empty NOERROR, an unknown name
 * is NXDOMAIN; AA is set, TTLs are as given, and an SOA at or above the name goes into the
 * authority section of negative answers. Malformed packets are logged (rate-limited), never
 * fatal.
 */

/**
 * dns2's Packet, loaded with the first query: a daemon with no dns element answering never loads
 * dns2 (it was a tenth of a daemon's start-up).
 */
let packetClass: typeof dns2.Packet | undefined;
function packet(): typeof dns2.Packet {
  return (packetClass ??= (require('dns2') as typeof dns2).Packet);
}
type Resource = dns2.Packet.Resource;

const RCODE = { NOERROR: 0, FORMERR: 1, SERVFAIL: 2, NXDOMAIN: 3, NOTIMP: 4, REFUSED: 5 } as const;
const QTYPE_ANY = 255;
const QTYPE_OPT = 41;
const QCLASS_IN = 1;
const QCLASS_ANY = 255;
/** The EDNS payload size we advertise (the DNS flag day 2020 value). */
const EDNS_PAYLOAD = 1232;
/** CNAME hops followed inside our own records before giving up (loops end here too). */
const MAX_CHAIN = 8;
/** Open TCP connections beyond this are closed at once. */
const MAX_TCP_CONNS = 64;
/** An idle TCP connection is closed after this long (RFC 7766 suggests seconds). */
const TCP_IDLE_MS = 10_000;
/** At most this many malformed-packet log lines per LOG_WINDOW_MS; the rest are counted. */
const LOG_BURST = 5;
const LOG_WINDOW_MS = 10_000;

/** One bound address: a UDP socket and a TCP server on the same port. */
interface Listener {
  address: string;
  udp: dgram.Socket;
  tcp: net.Server;
  conns: Set<net.Socket>;
}

/** What a query turned into: rcode and the records of each section. */
export interface Answer {
  rcode: number;
  answers: Array<{ owner: string; record: ZoneRecord }>;
  authorities: ZoneRecord[];
}

export class DnsElement implements ElementState {
  readonly #ctx: ElementContext;
  /** Records by lower-case name, in the order they were set. */
  readonly #records = new Map<string, ZoneRecord[]>();
  #listener: Listener | null = null;
  #scrubbed = false;
  #logWindow = { start: 0, count: 0, suppressed: 0 };

  private constructor(ctx: ElementContext) {
    this.#ctx = ctx;
  }

  /** Binds ADDR (default 127.0.0.1:0, loopback only) for UDP and TCP and starts answering. */
  static async make(spec: { addr?: string }, ctx: ElementContext): Promise<DnsElement> {
    const el = new DnsElement(ctx);
    el.#listener = await el.#listen(spec.addr ?? '127.0.0.1:0', 'mkdns');
    return el;
  }

  /** Adds the records of a zone text (one a line), or with replace puts them in place of all. */
  async set(records: string, replace: boolean): Promise<void> {
    let parsed: ZoneRecord[];
    try {
      parsed = parseZone(records);
    } catch (err) {
      if (!(err instanceof ZoneError)) throw err;
      throw new AppError('EINVAL', `set resoure record error: ${err.message}`, { cause: err });
    }
    if (replace) this.#records.clear();
    for (const r of parsed) {
      const list = this.#records.get(r.key);
      if (list) list.push(r);
      else this.#records.set(r.key, [r]);
    }
  }

  /** Removes every record of a name (any case, with or without the trailing dot). Never fails. */
  async unset(name: string): Promise<void> {
    const key = nameKey(name);
    if (key !== null) this.#records.delete(key);
  }

  /** Moves to a new address: the new one is bound first, so on failure the old one stays. */
  async rebind(addr: string): Promise<void> {
    if (this.#scrubbed) throw E.aborted();
    const next = await this.#listen(addr, 'rebind');
    if (this.#scrubbed) {
      await closeListener(next);
      throw E.aborted();
    }
    const old = this.#listener;
    this.#listener = next;
    if (old) await closeListener(old);
  }

  /** `{"Address": "ip:port", "Records": {"name.": ["name.\tTTL\tIN\tTYPE\tRDATA", …]}}`. */
  peek(): { Address: string; Records: Record<string, string[]> } {
    const out: Record<string, string[]> = {};
    for (const key of [...this.#records.keys()].sort()) {
      out[key] = this.#records.get(key)!.map(present);
    }
    return { Address: this.#listener?.address ?? '', Records: out };
  }

  /** Closes both sockets and every TCP connection, freeing the port. */
  async scrub(): Promise<void> {
    this.#scrubbed = true;
    const l = this.#listener;
    if (l) await closeListener(l);
  }

  // ---- sockets ------------------------------------------------------------------------------

  async #listen(addr: string, op: 'mkdns' | 'rebind'): Promise<Listener> {
    const bad = (msg: string, cause?: unknown) =>
      new AppError('EINVAL', `${op} error: ${msg}`, cause === undefined ? undefined : { cause });
    const parsed = parseAddr(addr);
    if (typeof parsed === 'string') throw bad(parsed);
    const current = this.#listener;
    if (current && parsed.port !== 0 && current.address === formatAddr(parsed.host, parsed.port)) {
      return current; // already there: rebinding would clash with ourselves
    }
    for (let attempt = 1; ; attempt++) {
      const udp = dgram.createSocket({ type: net.isIPv6(parsed.host) ? 'udp6' : 'udp4' });
      try {
        await bindUdp(udp, parsed.host, parsed.port);
      } catch (err) {
        throw bad(`udp ${errText(err)}`, err);
      }
      udp.on('error', (err) => this.#ctx.log(`dns ${this.#ctx.path}: udp error: ${err.message}`));
      const port = udp.address().port;
      const conns = new Set<net.Socket>();
      const tcp = net.createServer({ allowHalfOpen: true }, (c) => this.#onConn(c, conns));
      try {
        await listenTcp(tcp, parsed.host, port);
      } catch (err) {
        udp.close();
        const clash = (err as NodeJS.ErrnoException).code === 'EADDRINUSE';
        if (parsed.port === 0 && clash && attempt < 10) continue;
        throw bad(`tcp ${errText(err)}`, err);
      }
      udp.on('message', (msg, rinfo) => this.#onUdp(udp, msg, rinfo));
      tcp.on('error', (err) => this.#ctx.log(`dns ${this.#ctx.path}: tcp error: ${err.message}`));
      return { address: formatAddr(parsed.host, port), udp, tcp, conns };
    }
  }

  #onUdp(udp: dgram.Socket, msg: Buffer, rinfo: dgram.RemoteInfo): void {
    const peer = `udp ${formatAddr(rinfo.address, rinfo.port)}`;
    const reply = this.#respond(msg, peer, 'udp');
    if (reply) udp.send(reply, rinfo.port, rinfo.address, () => undefined);
  }

  /** RFC 1035 §4.2.2 framing: a 2-byte length before each message; pipelining allowed. */
  #onConn(c: net.Socket, conns: Set<net.Socket>): void {
    c.on('error', () => undefined);
    if (conns.size >= MAX_TCP_CONNS) {
      c.destroy();
      return;
    }
    conns.add(c);
    c.on('close', () => conns.delete(c));
    c.setTimeout(TCP_IDLE_MS, () => c.destroy());
    const peer = `tcp ${formatAddr(c.remoteAddress ?? '?', c.remotePort ?? 0)}`;
    let buf: Buffer = Buffer.alloc(0);
    c.on('data', (chunk: Buffer) => {
      buf = buf.length ? Buffer.concat([buf, chunk]) : chunk;
      while (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) {
        const msg = buf.subarray(2, 2 + buf.readUInt16BE(0));
        buf = buf.subarray(2 + msg.length);
        const reply = this.#respond(msg, peer, 'tcp');
        if (!reply) {
          c.destroy();
          return;
        }
        const len = Buffer.alloc(2);
        len.writeUInt16BE(reply.length);
        c.write(Buffer.concat([len, reply]));
      }
    });
    c.on('end', () => {
      if (buf.length) this.#malformed(peer, `connection ended inside a message (${buf.length} bytes)`);
      c.end();
    });
  }

  // ---- messages -----------------------------------------------------------------------------

  /** The reply to one message, or null to drop it. Never throws. */
  #respond(msg: Buffer, peer: string, transport: 'udp' | 'tcp'): Buffer | null {
    if (msg.length < 12) {
      this.#malformed(peer, `${msg.length}-byte message is shorter than a header`);
      return null;
    }
    const id = msg.readUInt16BE(0);
    const flags = msg.readUInt16BE(2);
    const opcode = (flags >> 11) & 0xf;
    const rd = (flags >> 8) & 1;
    const head = (rcode: number) => headerOnly(id, opcode, rd, rcode);
    if (flags & 0x8000) {
      this.#malformed(peer, 'message is a response, not a query');
      return null;
    }
    if (opcode !== 0) return head(RCODE.NOTIMP);
    const [qd, an, ns, ar] = [4, 6, 8, 10].map((o) => msg.readUInt16BE(o));
    // A question takes at least 5 bytes and a record at least 11: counts beyond that are lies.
    if (qd !== 1 || (an + ns + ar) * 11 > msg.length - 12 - 5) {
      this.#malformed(peer, `bad section counts (qd ${qd}, an ${an}, ns ${ns}, ar ${ar})`);
      return head(RCODE.FORMERR);
    }
    let req: dns2.Packet;
    try {
      req = packet().parse(msg);
    } catch (err) {
      this.#malformed(peer, errText(err));
      return head(RCODE.FORMERR);
    }
    const q = req.questions[0];
    if (!q || typeof q.name !== 'string') {
      this.#malformed(peer, 'question does not parse');
      return head(RCODE.FORMERR);
    }
    const opt = req.additionals.find((r) => r && r.type === QTYPE_OPT);
    const res = packet().createResponseFromRequest(req);
    res.header.aa = 1;
    if (opt) res.additionals.push(optRecord());
    if (q.class !== QCLASS_IN && q.class !== QCLASS_ANY) res.header.rcode = RCODE.REFUSED;
    else if (q.type === 251 || q.type === 252) res.header.rcode = RCODE.NOTIMP; // IXFR, AXFR
    else this.#fill(res, lookup(this.#records, q.name, q.type));
    const limit = transport === 'tcp' ? 0xffff : Math.max(512, opt ? Math.min(opt.class, EDNS_PAYLOAD) : 512);
    try {
      const out = encodeUncompressed(res);
      if (out.length <= limit) return out;
      if (transport === 'tcp') return head(RCODE.SERVFAIL);
      res.answers = [];
      res.authorities = [];
      res.header.tc = 1;
      return encodeUncompressed(res);
    } catch (err) {
      this.#ctx.log(`dns ${this.#ctx.path}: cannot encode the answer for ${q.name}: ${errText(err)}`);
      return head(RCODE.SERVFAIL);
    }
  }

  #fill(res: dns2.Packet, a: Answer): void {
    res.header.rcode = a.rcode;
    res.answers = a.answers.map(({ owner, record }) => toResource(owner, record, record.ttl));
    res.authorities = a.authorities.map((soa) =>
      toResource(soa.name, soa, soa.type === 'SOA' ? Math.min(soa.ttl, soa.minimum) : soa.ttl));
  }

  /** Logs a bad packet, at most LOG_BURST lines a window; the count of the rest follows. */
  #malformed(peer: string, why: string): void {
    const now = this.#ctx.clock.now();
    const w = this.#logWindow;
    if (now - w.start >= LOG_WINDOW_MS) {
      if (w.suppressed) this.#ctx.log(`dns ${this.#ctx.path}: ${w.suppressed} more malformed queries not logged`);
      this.#logWindow = { start: now, count: 0, suppressed: 0 };
    }
    if (this.#logWindow.count++ < LOG_BURST) {
      this.#ctx.log(`dns ${this.#ctx.path}: malformed query from ${peer}: ${why}`);
    } else {
      this.#logWindow.suppressed++;
    }
  }
}

// ---- answering (pure) -----------------------------------------------------------------------

/** Answers one question from a records map (lower-case name → records). */
export function lookup(records: ReadonlyMap<string, ZoneRecord[]>, qname: string, qtype: number): Answer {
  const key = asciiLower(qname.endsWith('.') ? qname : `${qname}.`);
  const owner = key === '.' ? '.' : qname.endsWith('.') ? qname : `${qname}.`;
  const negative = (rcode: number): Answer => ({ rcode, answers: [], authorities: soaAbove(records, key) });
  const recs = records.get(key);
  if (!recs || recs.length === 0) {
    return negative(hasBelow(records, key) ? RCODE.NOERROR : RCODE.NXDOMAIN);
  }
  if (qtype === QTYPE_ANY) {
    return { rcode: RCODE.NOERROR, answers: recs.map((record) => ({ owner, record })), authorities: [] };
  }
  const answers: Answer['answers'] = [];
  const seen = new Set([key]);
  let here = recs;
  let hereOwner = owner;
  for (;;) {
    const exact = here.filter((r) => TYPE_CODES[r.type] === qtype);
    if (exact.length) {
      answers.push(...exact.map((record) => ({ owner: hereOwner, record })));
      break;
    }
    const cname = here.find((r) => r.type === 'CNAME');
    if (!cname || cname.type !== 'CNAME') break;
    answers.push({ owner: hereOwner, record: cname });
    const target = asciiLower(cname.target);
    const next = records.get(target);
    if (!next || seen.has(target) || seen.size > MAX_CHAIN) break;
    seen.add(target);
    here = next;
    hereOwner = cname.target;
  }
  if (answers.length) return { rcode: RCODE.NOERROR, answers, authorities: [] };
  return negative(RCODE.NOERROR);
}

/** True if some stored name lies below key (key is then an empty non-terminal: NOERROR). */
function hasBelow(records: ReadonlyMap<string, ZoneRecord[]>, key: string): boolean {
  const suffix = key === '.' ? '.' : `.${key}`;
  for (const k of records.keys()) if (k !== key && k.endsWith(suffix)) return true;
  return false;
}

/** The SOA at key or the nearest name above it, for the authority section of negative answers. */
function soaAbove(records: ReadonlyMap<string, ZoneRecord[]>, key: string): ZoneRecord[] {
  for (let k = key; ; k = k.slice(k.indexOf('.') + 1) || '.') {
    const soa = records.get(k)?.find((r) => r.type === 'SOA');
    if (soa) return [soa];
    if (k === '.') return [];
  }
}

/** A record as dns2's encoder wants it. */
function toResource(owner: string, r: ZoneRecord, ttl: number): Resource {
  const base = { name: owner, type: TYPE_CODES[r.type], class: QCLASS_IN, ttl };
  const map = (): object => {
    switch (r.type) {
      case 'A': return { address: r.address };
      case 'AAAA': return { address: ipv6Groups(r.address).map((g) => g.toString(16)).join(':') };
      case 'CNAME': case 'PTR': return { domain: r.target };
      case 'NS': return { ns: r.target };
      case 'MX': return { priority: r.preference, exchange: r.exchange };
      case 'TXT': return { data: r.strings };
      case 'SRV': return { priority: r.priority, weight: r.weight, port: r.port, target: r.target };
      case 'SOA': return {
        primary: r.mname, admin: r.rname, serial: r.serial, refresh: r.refresh, retry: r.retry,
        expiration: r.expire, minimum: r.minimum,
      };
    }
  };
  return { ...base, ...map() } as Resource;
}

/** The EDNS OPT pseudo-record of our replies (RFC 6891): our payload size, version 0. */
function optRecord(): Resource {
  return { name: '.', type: QTYPE_OPT, class: EDNS_PAYLOAD, ttl: 0, rdata: [] } as unknown as Resource;
}

/** A reply with no sections, for refusals and errors (also when the question did not parse). */
function headerOnly(id: number, opcode: number, rd: number, rcode: number): Buffer {
  const b = Buffer.alloc(12);
  b.writeUInt16BE(id, 0);
  b.writeUInt16BE(0x8000 | (opcode << 11) | (rd << 8) | rcode, 2);
  return b;
}

// ---- addresses ------------------------------------------------------------------------------

/** `host:port` or `[v6]:port`; an empty host is all interfaces (`::`). A string is an error. */
export function parseAddr(addr: string): { host: string; port: number } | string {
  const m = /^(?:\[([^\]]*)\]|([^:[\]]*)):(\d{1,5})$/.exec(addr.trim());
  if (!m) return `address ${JSON.stringify(addr)}: want host:port or [ipv6]:port`;
  let host = m[1] ?? m[2];
  const port = Number(m[3]);
  if (port > 65535) return `address ${JSON.stringify(addr)}: port out of range`;
  if (host === '') host = '::';
  else if (host === 'localhost') host = '127.0.0.1';
  if (m[1] !== undefined ? !net.isIPv6(host) : !net.isIPv4(host) && host !== '::') {
    return `address ${JSON.stringify(addr)}: host must be an IP address`;
  }
  return { host, port };
}

/** `ip:port`, with IPv6 hosts in brackets, in their canonical form. */
function formatAddr(host: string, port: number): string {
  if (!net.isIPv6(host)) return `${host}:${port}`;
  const h = host.includes('%') ? host : canonicalIPv6(ipv6Groups(host));
  return `[${h}]:${port}`;
}

function bindUdp(udp: dgram.Socket, host: string, port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const onError = (err: Error) => {
      udp.close();
      reject(err);
    };
    udp.once('error', onError);
    udp.bind({ address: host, port, exclusive: true }, () => {
      udp.off('error', onError);
      resolve();
    });
  });
}

function listenTcp(tcp: net.Server, host: string, port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    tcp.once('error', reject);
    tcp.listen({ host, port, exclusive: true }, () => {
      tcp.off('error', reject);
      resolve();
    });
  });
}

async function closeListener(l: Listener): Promise<void> {
  for (const c of l.conns) c.destroy();
  await Promise.all([
    new Promise<void>((resolve) => {
      try {
        l.udp.close(() => resolve());
      } catch {
        resolve(); // already closed
      }
    }),
    new Promise<void>((resolve) => l.tcp.close(() => resolve())),
  ]);
}

function errText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/**
 * Encodes without name compression. dns2 compresses by case-insensitive suffix, so a record's
 * name would come back in the question's case (`mail.C.D.` for a query of `C.D`); RFC 4343 asks
 * servers to keep the case of their data. The answers of a small element are short. (dns2 takes
 * the writer as an argument its typings do not declare; a writer whose name table is not a Map
 * turns compression off.)
 */
function encodeUncompressed(res: dns2.Packet): Buffer {
  const writer = Object.assign(new (packet().Writer)(), { names: {} });
  return (res.toBuffer as unknown as (w: unknown) => Buffer).call(res, writer);
}

/** The dns kind: a small authoritative name server (docs/dns.md). */
export const dns: KindModule<DnsElement, { addr?: string }> = {
  kind: 'dns',
  defaultSpec: {},
  parse(spec) {
    const addr = (spec as { addr?: unknown } | null)?.addr;
    if (addr !== undefined && addr !== null && typeof addr !== 'string') throw new AppError('EINVAL', 'mkdns error: the address must be a string');
    return typeof addr === 'string' ? { addr } : {};
  },
  describe: (s) => s.addr ?? '127.0.0.1:0',
  make: (s, ctx) => DnsElement.make(s, ctx),
  verbs: {
    dnsSet: (d, [records, replace]) => d.set(records, replace),
    dnsUnset: (d, [name]) => d.unset(name),
    dnsRebind: (d, [addr]) => d.rebind(addr),
  },
};
