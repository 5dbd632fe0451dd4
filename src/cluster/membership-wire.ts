/**
 * The membership wire format. A datagram is a concatenation of msgpack values: first a header
 * array `[MsgType, ...fields]`, then zero or more record arrays (state news about members),
 * each encoded once when queued and copied into packets as is. A packet never exceeds the
 * configured packet size (1400 bytes by default): the header goes first and records are added
 * while they fit.
 *
 * Headers:
 *   Ping         [0, seq, targetId, fromId]
 *   IndirectPing [1, seq, targetId, targetAddr, fromId]   "probe targetId for me"
 *   Ack          [2, seq, targetId]                        targetId: the probed member (an ack
 *                                                         that names another is ignored)
 *   Nack         [3, seq, targetId]                        "I asked, the target did not answer"
 *   SyncReq      [4, reqId, flags, want?, digest?]         flags: 1 join, 2 only your own record,
 *                                                         4 answer only if your digest differs;
 *                                                         want: part numbers to resend (or nil)
 *   SyncPart     [5, reqId, part, total, dir, same?]       dir 0: response, 1: the requester's push;
 *                                                         same = 1: digests are equal, no records
 *   Gossip       [6, fromId]                               records only
 * Records:
 *   Alive   [0, id, incarnation, url, addr]
 *   Suspect [1, id, incarnation, fromId]
 *   Dead    [2, id, incarnation, fromId]
 *   Left    [3, id, incarnation]
 */
import { pack, unpackMultiple } from 'msgpackr';

// append only: values are on the wire
export enum MsgType {
  Ping = 0,
  IndirectPing = 1,
  Ack = 2,
  Nack = 3,
  SyncReq = 4,
  SyncPart = 5,
  Gossip = 6,
}

// append only: values are on the wire
export enum RecordKind {
  Alive = 0,
  Suspect = 1,
  Dead = 2,
  Left = 3,
}

/** SyncReq flags. */
export const SYNC_JOIN = 1;
export const SYNC_SELF = 2;
export const SYNC_DIGEST = 4;

/**
 * An order-independent digest of a set of member ids: [count, xor of FNV-1a, xor of a second
 * FNV-1a variant]. Adding or removing an id toggles it, so it is kept up to date in O(1).
 */
export type Digest = [number, number, number];

export function idHashes(id: string): [number, number] {
  let a = 0x811c9dc5;
  let b = 0x01000193 ^ 0x5bd1e995;
  for (let i = 0; i < id.length; i++) {
    const c = id.charCodeAt(i);
    a = Math.imul(a ^ c, 0x01000193) >>> 0;
    b = Math.imul(b ^ c, 0x5bd1e995) >>> 0;
    b ^= b >>> 13;
  }
  return [a, b >>> 0];
}

export type StateRecord =
  | { kind: RecordKind.Alive; id: string; inc: number; url: string; addr: string }
  | { kind: RecordKind.Suspect; id: string; inc: number; from: string }
  | { kind: RecordKind.Dead; id: string; inc: number; from: string }
  | { kind: RecordKind.Left; id: string; inc: number };

export function encodeRecord(r: StateRecord): Buffer {
  switch (r.kind) {
    case RecordKind.Alive:
      return pack([r.kind, r.id, r.inc, r.url, r.addr]);
    case RecordKind.Suspect:
    case RecordKind.Dead:
      return pack([r.kind, r.id, r.inc, r.from]);
    case RecordKind.Left:
      return pack([r.kind, r.id, r.inc]);
  }
}

/** A record from its decoded array, or undefined if malformed (skipped, never fatal). */
export function decodeRecord(v: unknown): StateRecord | undefined {
  if (!Array.isArray(v) || typeof v[1] !== 'string' || typeof v[2] !== 'number') return undefined;
  const [kind, id, inc] = v as [number, string, number];
  switch (kind) {
    case RecordKind.Alive:
      if (typeof v[3] !== 'string' || typeof v[4] !== 'string') return undefined;
      return { kind, id, inc, url: v[3], addr: v[4] };
    case RecordKind.Suspect:
    case RecordKind.Dead:
      if (typeof v[3] !== 'string') return undefined;
      return { kind, id, inc, from: v[3] };
    case RecordKind.Left:
      return { kind, id, inc };
    default:
      return undefined;
  }
}

/** A decoded datagram: the header array and the raw record arrays after it. */
export interface Decoded {
  header: unknown[];
  records: unknown[];
}

/** Decodes a datagram; throws on garbage (the caller logs and drops it). */
export function decodePacket(buf: Buffer): Decoded {
  const values = unpackMultiple(buf) as unknown[];
  const header = values[0];
  if (!Array.isArray(header) || typeof header[0] !== 'number') throw new Error('bad packet header');
  return { header, records: values.slice(1) };
}

/** Packs a header followed by pre-encoded records (the caller kept them within the budget). */
export function encodePacket(header: unknown[], records: Buffer[] = []): Buffer {
  const h = pack(header);
  if (records.length === 0) return h;
  return Buffer.concat([h, ...records]);
}

/** Encoded size of a header, so the caller knows the room left for records. */
export function headerSize(header: unknown[]): number {
  return pack(header).length;
}

/**
 * Splits records into packets of at most `size` bytes, each starting with header(part, total).
 * Used by the state sync, whose state may not fit one datagram.
 */
export function splitIntoPackets(records: Buffer[], size: number, header: (part: number, total: number) => unknown[]): Buffer[] {
  const room = size - headerSize(header(0xffff, 0xffff)); // worst-case header size
  const groups: Buffer[][] = [[]];
  let used = 0;
  for (const r of records) {
    if (r.length > room) continue; // cannot happen with sane ids and urls; never send it
    if (used + r.length > room) {
      groups.push([]);
      used = 0;
    }
    groups[groups.length - 1]!.push(r);
    used += r.length;
  }
  return groups.map((g, i) => encodePacket(header(i, groups.length), g));
}
