/**
 * Full-state sync ("push-pull") over datagrams, used by join, by the periodic anti-entropy
 * round and by the attempt to reach a dead member again (partition healing).
 *
 * A → B  SyncReq  [4, reqId, flags] + A's own Alive record (small: a dead B costs A one packet)
 * B      merges A's record (a joiner becomes known to B, and B gossips it on)
 * B → A  SyncPart [5, reqId, i, total, 0] + B's records, split into ≤ packetSize datagrams
 * A      merges each part as it comes (parts are independent); after a quiet gap it asks for
 *        the parts it lacks (SyncReq with `want`), which B resends from a short-lived cache
 * A → B  SyncPart [5, reqId, i, total, 1] + A's records (not for a join: a joiner knows
 *        nothing yet), best effort.
 *
 * A "check" is a sync that carries a digest of the requester's live set: if the responder's
 * digest is the same it answers one empty part marked `same` and nothing more moves, so the
 * periodic anti-entropy costs ~100 bytes while views agree and the full state only when not.
 *
 * A "self" sync asks only for the other side's own record (one small answer): used when a
 * packet comes from a member we do not know, which happens when we joined while news of it
 * was still spreading.
 *
 * The attempt succeeds when any part of the answer arrived within syncTimeout; the missing
 * parts are then re-requested a few times, and what still lacks is left to anti-entropy.
 */
import type { TimerHandle } from '../kit/clock';
import type { MembershipConfig } from './membership-config';
import { encodePacket, MsgType, splitIntoPackets, SYNC_DIGEST, SYNC_JOIN, SYNC_SELF, type Digest } from './membership-wire';

/** What the sync needs from Membership. */
export interface SyncHost {
  readonly cfg: MembershipConfig;
  send(to: string, buf: Buffer): void;
  /** Every record of the local view, encoded. */
  stateRecords(): Buffer[];
  /** Our own Alive record, encoded. */
  selfRecord(): Buffer;
  /** The digest of our live set. */
  digest(): Digest;
  /** Applies records from a sync; `join` is true for the answer to our own join. */
  merge(records: unknown[], join: boolean): void;
  after(ms: number, fn: () => void): TimerHandle;
  cancel(h: TimerHandle | undefined): void;
}

/** join: our join (the answer is not gossiped on, nothing is pushed back); sync: anti-entropy
 *  both ways; check: a sync only if the digests differ; self: only the other side's record. */
export type SyncMode = 'join' | 'sync' | 'check' | 'self';

/** How a sync ended: no answer, the views were the same (check), or state was exchanged. */
export type SyncResult = 'failed' | 'same' | 'synced';

interface Pending {
  addr: string;
  mode: SyncMode;
  total: number;
  got: Set<number>;
  rerequests: number;
  timer: TimerHandle | undefined;
  done: (r: SyncResult) => void;
}

/** Re-requests of missing parts before an incomplete answer is accepted as it is. */
const MAX_REREQUESTS = 3;

export class StateSync {
  readonly #host: SyncHost;
  readonly #pending = new Map<number, Pending>();
  /** Answers we sent, kept briefly so lost parts can be resent as they were. */
  readonly #answers = new Map<string, { parts: Buffer[]; timer: TimerHandle }>();
  #nextId = 1;

  constructor(host: SyncHost) {
    this.#host = host;
  }

  /** Starts a sync with addr; done is called exactly once. */
  start(addr: string, mode: SyncMode, timeout: number, done: (r: SyncResult) => void): void {
    const reqId = this.#nextId++;
    const p: Pending = { addr, mode, total: -1, got: new Set(), rerequests: 0, timer: undefined, done };
    this.#pending.set(reqId, p);
    p.timer = this.#host.after(timeout, () => this.#finish(reqId, 'failed'));
    const head = mode === 'check' ? [MsgType.SyncReq, reqId, flagsOf(mode), null, this.#host.digest()] : [MsgType.SyncReq, reqId, flagsOf(mode)];
    this.#host.send(addr, encodePacket(head, [this.#host.selfRecord()]));
  }

  /** Handles a SyncReq from `from`; its records were already merged by the caller. */
  onRequest(from: string, header: unknown[]): void {
    const [, reqId, flags, want, digest] = header as [number, number, number, number[] | null | undefined, unknown];
    if (typeof reqId !== 'number') return;
    if (typeof flags === 'number' && (flags & SYNC_DIGEST) !== 0 && sameDigest(digest, this.#host.digest())) {
      this.#host.send(from, encodePacket([MsgType.SyncPart, reqId, 0, 1, 0, 1]));
      return;
    }
    if (typeof flags === 'number' && (flags & SYNC_SELF) !== 0) {
      this.#host.send(from, encodePacket([MsgType.SyncPart, reqId, 0, 1, 0], [this.#host.selfRecord()]));
      return;
    }
    const key = `${from}|${reqId}`;
    const cached = this.#answers.get(key);
    if (cached && Array.isArray(want)) {
      for (const i of want) if (typeof i === 'number' && cached.parts[i]) this.#host.send(from, cached.parts[i]!);
      return;
    }
    const parts =
      cached?.parts ??
      splitIntoPackets(this.#host.stateRecords(), this.#host.cfg.packetSize, (i, n) => [MsgType.SyncPart, reqId, i, n, 0]);
    if (!cached) {
      const timer = this.#host.after(this.#host.cfg.syncTimeout * 3, () => this.#answers.delete(key));
      this.#answers.set(key, { parts, timer });
    }
    for (const b of parts) this.#host.send(from, b);
  }

  /** Handles a SyncPart; merges its records and tracks completeness of our requests. */
  onPart(header: unknown[], records: unknown[]): void {
    const [, reqId, part, total, dir, same] = header as [number, number, number, number, number, number?];
    if (dir === 1) {
      this.#host.merge(records, false);
      return;
    }
    const p = this.#pending.get(reqId);
    this.#host.merge(records, p?.mode === 'join');
    if (!p || typeof part !== 'number' || typeof total !== 'number') return;
    if (same === 1) return this.#finish(reqId, 'same');
    p.total = total;
    p.got.add(part);
    if (p.got.size >= total) {
      this.#finish(reqId, 'synced');
      return;
    }
    // Wait for a quiet gap, then ask for what is missing.
    this.#host.cancel(p.timer);
    p.timer = this.#host.after(this.#gap(), () => this.#rerequest(reqId));
  }

  /** Forgets everything (on close); pending syncs report failure. */
  close(): void {
    for (const id of [...this.#pending.keys()]) this.#finish(id, 'failed');
    for (const a of this.#answers.values()) this.#host.cancel(a.timer);
    this.#answers.clear();
  }

  #gap(): number {
    return Math.max(1, Math.floor(this.#host.cfg.syncTimeout / 4));
  }

  #rerequest(reqId: number): void {
    const p = this.#pending.get(reqId);
    if (!p) return;
    if (p.rerequests >= MAX_REREQUESTS) {
      this.#finish(reqId, 'synced'); // partial, but the other side is up; anti-entropy does the rest
      return;
    }
    p.rerequests++;
    const want: number[] = [];
    for (let i = 0; i < p.total; i++) if (!p.got.has(i)) want.push(i);
    // A long want list would not fit one packet: ask for the first few hundred, then again.
    const head = [MsgType.SyncReq, reqId, flagsOf(p.mode), want.slice(0, 300)];
    this.#host.send(p.addr, encodePacket(head));
    p.timer = this.#host.after(this.#gap(), () => this.#rerequest(reqId));
  }

  #finish(reqId: number, r: SyncResult): void {
    const p = this.#pending.get(reqId);
    if (!p) return;
    this.#pending.delete(reqId);
    this.#host.cancel(p.timer);
    if (r === 'synced' && (p.mode === 'sync' || p.mode === 'check')) {
      const parts = splitIntoPackets(this.#host.stateRecords(), this.#host.cfg.packetSize, (i, n) => [MsgType.SyncPart, reqId, i, n, 1]);
      for (const b of parts) this.#host.send(p.addr, b);
    }
    p.done(r);
  }
}

function flagsOf(mode: SyncMode): number {
  return mode === 'join' ? SYNC_JOIN : mode === 'self' ? SYNC_SELF : mode === 'check' ? SYNC_DIGEST : 0;
}

function sameDigest(x: unknown, d: Digest): boolean {
  return Array.isArray(x) && x.length === 3 && x[0] === d[0] && x[1] === d[1] && x[2] === d[2];
}
