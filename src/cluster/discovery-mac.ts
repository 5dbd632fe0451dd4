/**
 * The envelope of a multicast discovery datagram. Anyone on the LAN can send to the group, so
 * with a cluster key every datagram carries a MAC; without one it still carries the same
 * header and is still checked, so that stray traffic on the group is dropped, not parsed.
 *
 * Layout (big-endian):
 *   "CRKD" | version (1) | mode (1: 0 plain, 1 keyed) | sent-at ms (8) | random id (16) | payload
 *   | HMAC-SHA256 of everything before it (32, keyed mode only)
 * The MAC key is HKDF-SHA256(K, "circuit/2 " + domain): "discovery" for the multicast group,
 * "membership" for the mesh's datagrams (membership-seal.ts), separate from TLS's PSK, so a
 * datagram of one kind never verifies as the other. A datagram is accepted only if it is at
 * most MAX_DATAGRAM_BYTES long and its clock is within maxSkewMs of ours, both checked before
 * the MAC is computed (a flood of junk costs no HMAC); a ReplayWindow passed to openDatagram
 * remembers the ids it has accepted for that long, so a copy is dropped.
 */
import { createHmac, hkdfSync, randomBytes, timingSafeEqual } from 'node:crypto';

/** The version byte of this envelope (1 was keyed under "circuit/v1 discovery" for both uses). */
export const DATAGRAM_VERSION = 2;
/** Longest datagram opened; anything longer is dropped unread. */
export const MAX_DATAGRAM_BYTES = 8192;
/** How far a datagram's timestamp may be from the receiver's clock, by default. */
export const DEFAULT_MAX_SKEW_MS = 30_000;

const MAGIC = Buffer.from('CRKD', 'latin1');
const ID_BYTES = 16;
const MAC_BYTES = 32;
const AT = MAGIC.length + 2;
const ID_AT = AT + 8;
const HEADER_BYTES = ID_AT + ID_BYTES;
const MODE_PLAIN = 0;
const MODE_KEYED = 1;

/** What a datagram is for; each has its own MAC key. */
export type Domain = 'discovery' | 'membership';

const macKeys = new WeakMap<Buffer, Map<Domain, Buffer>>();

function macKey(key: Buffer, domain: Domain): Buffer {
  let m = macKeys.get(key);
  if (!m) macKeys.set(key, (m = new Map()));
  let k = m.get(domain);
  if (!k) {
    k = Buffer.from(hkdfSync('sha256', key, Buffer.alloc(0), `circuit/2 ${domain}`, 32));
    m.set(domain, k);
  }
  return k;
}

function mac(key: Buffer, signed: Buffer, domain: Domain): Buffer {
  return createHmac('sha256', macKey(key, domain)).update(signed).digest();
}

/** Wraps a payload: header with `now` and a fresh id, and a MAC if keyed. */
export function sealDatagram(key: Buffer | null, payload: Buffer, now: number, domain: Domain = 'discovery'): Buffer {
  const head = Buffer.alloc(HEADER_BYTES);
  MAGIC.copy(head, 0);
  head[MAGIC.length] = DATAGRAM_VERSION;
  head[MAGIC.length + 1] = key ? MODE_KEYED : MODE_PLAIN;
  head.writeBigUInt64BE(BigInt(Math.max(0, Math.floor(now))), AT);
  randomBytes(ID_BYTES).copy(head, ID_AT);
  const signed = Buffer.concat([head, payload]);
  return key ? Buffer.concat([signed, mac(key, signed, domain)]) : signed;
}

/**
 * The payload of a datagram, or null if it is malformed, of the other mode (a keyed receiver
 * drops plain datagrams and the reverse), forged, outside the clock window, or (with `seen`)
 * a copy of one already accepted. Never throws on any input.
 */
export function openDatagram(
  key: Buffer | null, buf: Buffer, now: number, maxSkewMs = DEFAULT_MAX_SKEW_MS, seen?: ReplayWindow, domain: Domain = 'discovery',
): Buffer | null {
  const tail = key ? MAC_BYTES : 0;
  if (buf.length < HEADER_BYTES + tail || buf.length > MAX_DATAGRAM_BYTES) return null;
  if (!buf.subarray(0, MAGIC.length).equals(MAGIC)) return null;
  if (buf[MAGIC.length] !== DATAGRAM_VERSION) return null;
  if (buf[MAGIC.length + 1] !== (key ? MODE_KEYED : MODE_PLAIN)) return null;
  const at = Number(buf.readBigUInt64BE(AT));
  if (!(Math.abs(now - at) <= maxSkewMs)) return null;
  const signedEnd = buf.length - tail;
  if (key && !timingSafeEqual(buf.subarray(signedEnd), mac(key, buf.subarray(0, signedEnd), domain))) return null;
  if (seen && !seen.admit(buf.toString('hex', ID_AT, HEADER_BYTES), Math.max(at, now) + maxSkewMs, now)) return null;
  return Buffer.from(buf.subarray(HEADER_BYTES, signedEnd));
}

/**
 * The ids of recently accepted datagrams, each kept until its timestamp leaves the window. It
 * is bounded: past `capacity` ids the oldest are forgotten (a flood of valid datagrams needs
 * the key, and forgetting only lets an old copy in again, which the join logic tolerates).
 */
export class ReplayWindow {
  #expiry = new Map<string, number>();
  readonly capacity: number;

  constructor(capacity = 4096) {
    this.capacity = capacity;
  }

  /** True the first time an id is seen within its lifetime; false for a copy. */
  admit(id: string, until: number, now: number): boolean {
    this.#sweep(now);
    const known = this.#expiry.get(id);
    if (known !== undefined && known >= now) return false;
    this.#expiry.delete(id);
    this.#expiry.set(id, until);
    while (this.#expiry.size > this.capacity) {
      const oldest = this.#expiry.keys().next().value as string;
      this.#expiry.delete(oldest);
    }
    return true;
  }

  /** How many ids are remembered now; for tests. */
  get size(): number {
    return this.#expiry.size;
  }

  /** Drops expired ids from the front; insertion order is close to expiry order. */
  #sweep(now: number): void {
    for (const [id, until] of this.#expiry) {
      if (until >= now) break;
      this.#expiry.delete(id);
    }
  }
}
