/**
 * The local view of the cluster and the SWIM state rules (memberlist's state.go, without the
 * network): one entry per member ever heard of, and the transitions alive → suspect → dead,
 * left, and back, ordered by incarnation numbers. Every change queues a broadcast and emits an
 * event through the hooks; the network side (membership.ts) feeds records in and sends.
 *
 * The rules, for a record about member m at incarnation i:
 *   alive(i)    wins over anything about m with a lower incarnation; a dead or left m comes back
 *   suspect(i)  wins over alive(j ≤ i); starts a Lifeguard suspicion timer; more suspects at the
 *               same incarnation from other members are confirmations that shorten it
 *   dead(i)     wins over alive or suspect (j ≤ i); left(i) likewise, and is final
 *   about us    suspect or dead news makes us refute: incarnation above i, broadcast alive
 */
import type { Clock } from '../kit/clock';
import type { MembershipConfig } from './membership-config';
import { encodeRecord, idHashes, RecordKind, type Digest, type StateRecord } from './membership-wire';
import { Suspicion, suspicionMin } from './suspicion';

export type MemberState = 'alive' | 'suspect' | 'dead' | 'left';

/** One row of the local view. */
export interface Entry {
  id: string;
  url: string;
  addr: string;
  state: MemberState;
  inc: number;
  /** When the state last changed (clock ms): tombstones are forgotten after a retention time. */
  since: number;
  suspicion?: Suspicion;
}

/** What the view needs from its owner. */
export interface ViewHooks {
  readonly cfg: MembershipConfig;
  readonly clock: Clock;
  random(): number;
  /** Queues news for gossip (keyed by member: newer news replaces older). */
  broadcast(r: StateRecord): void;
  emit(event: 'join' | 'leave' | 'update', e: Entry): void;
  /** A suspicion ran out: the owner checks once more, then calls dead(). */
  suspicionExpired(e: Entry, inc: number): void;
  /** We refuted news of our death: a hint that we may be the slow one. */
  refuted(): void;
}

export class MemberView {
  readonly self: Entry;
  readonly table = new Map<string, Entry>();
  /** Dead (not left) members: candidates for the reconnect attempt that heals partitions. */
  readonly deadIds = new Set<string>();
  /** Live members (alive or suspect), us included. */
  live = 0;
  /** Digest of the live set's ids, kept in step by #toggleLive; compared by anti-entropy. */
  readonly digest: Digest = [0, 0, 0];
  /** While leaving we no longer refute: our Left record must win. */
  leaving = false;
  /** Probe order: a shuffled round of member ids, and our place in it. */
  #probeOrder: string[] = [];
  #probeIdx = 0;
  readonly #hooks: ViewHooks;

  constructor(self: { id: string; url: string; addr: string; inc: number }, hooks: ViewHooks) {
    this.#hooks = hooks;
    this.self = { ...self, state: 'alive', since: hooks.clock.now() };
    this.table.set(self.id, this.self);
    this.#toggleLive(self.id, 1);
  }

  /** Live entries (alive or suspect), us included. */
  members(): Entry[] {
    const out: Entry[] = [];
    for (const e of this.table.values()) if (e.state === 'alive' || e.state === 'suspect') out.push(e);
    return out;
  }

  /** True for a raw Alive record about another member that is no newer than what we hold:
   *  it would change nothing, so it is skipped before being decoded. */
  isOldAlive(raw: unknown): boolean {
    if (!Array.isArray(raw) || raw[0] !== RecordKind.Alive) return false;
    const e = this.table.get(raw[1] as string);
    return e !== undefined && e !== this.self && typeof raw[2] === 'number' && raw[2] <= e.inc;
  }

  /** Stops every suspicion timer (on close). */
  stop(): void {
    for (const e of this.table.values()) e.suspicion?.stop();
  }

  /** The next live member in a shuffled round-robin order; reshuffles (and forgets old
   *  tombstones) after each full round, so every member is probed once per round. */
  nextTarget(): Entry | undefined {
    for (let tries = 0; tries < 2; tries++) {
      while (this.#probeIdx < this.#probeOrder.length) {
        const e = this.table.get(this.#probeOrder[this.#probeIdx++]!);
        if (e && e !== this.self && (e.state === 'alive' || e.state === 'suspect')) return e;
      }
      this.#reshuffle();
    }
    return undefined;
  }

  #reshuffle(): void {
    const now = this.#hooks.clock.now();
    const order: string[] = [];
    for (const e of [...this.table.values()]) {
      if (e === this.self) continue;
      if (e.state === 'alive' || e.state === 'suspect') order.push(e.id);
      else if (now - e.since > (e.state === 'dead' ? this.#hooks.cfg.deadRetention : this.#hooks.cfg.leftRetention)) {
        this.table.delete(e.id);
        this.deadIds.delete(e.id);
      }
    }
    for (let i = order.length - 1; i > 0; i--) {
      const j = Math.floor(this.#hooks.random() * (i + 1));
      [order[i], order[j]] = [order[j]!, order[i]!];
    }
    this.#probeOrder = order;
    this.#probeIdx = 0;
  }


  /** Up to n random live members other than us and `except`. */
  randomLive(n: number, except?: string): Entry[] {
    const out: Entry[] = [];
    const seen = new Set<string>();
    const order = this.#probeOrder;
    for (let tries = 0; out.length < n && tries < n * 4 && order.length > 0; tries++) {
      const id = order[Math.floor(this.#hooks.random() * order.length)]!;
      if (id === except || seen.has(id)) continue;
      seen.add(id);
      const e = this.table.get(id);
      if (e && e !== this.self && (e.state === 'alive' || e.state === 'suspect')) out.push(e);
    }
    return out;
  }


  /** The whole view for a sync. A suspect goes as Alive then Suspect, so a member that did
   *  not know it learns its address too; dead and left ones only matter to those who know them. */
  stateRecords(): Buffer[] {
    const out: Buffer[] = [];
    for (const e of this.table.values()) {
      if (e.state === 'suspect') out.push(encodeRecord({ kind: RecordKind.Alive, id: e.id, inc: e.inc, url: e.url, addr: e.addr }));
      out.push(encodeRecord(this.record(e)));
    }
    return out;
  }

  record(e: Entry): StateRecord {
    switch (e.state) {
      case 'alive':
        return { kind: RecordKind.Alive, id: e.id, inc: e.inc, url: e.url, addr: e.addr };
      case 'suspect':
        return { kind: RecordKind.Suspect, id: e.id, inc: e.inc, from: this.self.id };
      case 'dead':
        return { kind: RecordKind.Dead, id: e.id, inc: e.inc, from: this.self.id };
      case 'left':
        return { kind: RecordKind.Left, id: e.id, inc: e.inc };
    }
  }


  apply(r: StateRecord, gossip: boolean): void {
    switch (r.kind) {
      case RecordKind.Alive:
        return this.alive(r, gossip);
      case RecordKind.Suspect:
        return this.suspect(r);
      case RecordKind.Dead:
        return this.dead(r, 'dead');
      case RecordKind.Left:
        return this.dead({ id: r.id, inc: r.inc, from: r.id }, 'left');
    }
  }


  alive(r: { id: string; inc: number; url: string; addr: string }, gossip: boolean): void {
    if (r.id === this.self.id) {
      if (r.inc > this.self.inc && !this.leaving) this.refute(r.inc); // someone holds newer news of us
      return;
    }
    const e = this.table.get(r.id);
    if (!e) {
      const n: Entry = { id: r.id, url: r.url, addr: r.addr, state: 'alive', inc: r.inc, since: this.#hooks.clock.now() };
      this.table.set(r.id, n);
      this.#toggleLive(r.id, 1);
      this.#enqueueProbe(r.id);
      if (gossip) this.#hooks.broadcast({ kind: RecordKind.Alive, ...r });
      this.#hooks.emit('join', n);
      return;
    }
    if (r.inc <= e.inc) return;
    const was = e.state;
    e.suspicion?.stop();
    e.suspicion = undefined;
    Object.assign(e, { inc: r.inc, url: r.url, addr: r.addr, state: 'alive' as const, since: this.#hooks.clock.now() });
    if (gossip || was === 'dead' || was === 'left') this.#hooks.broadcast({ kind: RecordKind.Alive, ...r });
    if (was === 'dead' || was === 'left') {
      this.deadIds.delete(e.id);
      this.#toggleLive(e.id, 1);
      this.#enqueueProbe(e.id);
      this.#hooks.emit('join', e);
    } else this.#hooks.emit('update', e);
  }

  suspect(r: { id: string; inc: number; from: string }): void {
    const e = this.table.get(r.id);
    if (!e || r.inc < e.inc || e.state === 'dead' || e.state === 'left') return;
    if (e === this.self) {
      if (!this.leaving) this.refute(r.inc);
      return;
    }
    if (e.state === 'suspect' && r.inc === e.inc) {
      // An independent confirmation shortens the timer; pass it on so others count it too.
      if (e.suspicion?.confirm(r.from)) this.#hooks.broadcast({ kind: RecordKind.Suspect, ...r });
      return;
    }
    e.suspicion?.stop();
    Object.assign(e, { inc: r.inc, state: 'suspect' as const, since: this.#hooks.clock.now() });
    const n = this.live;
    let k = this.#hooks.cfg.suspicionMult - 2;
    if (n - 2 < k) k = 0;
    const min = suspicionMin(this.#hooks.cfg.suspicionMult, n, this.#hooks.cfg.probeInterval);
    e.suspicion = new Suspicion(r.from, k, min, min * this.#hooks.cfg.suspicionMaxTimeoutMult, this.#hooks.clock, () => {
      if (e.state === 'suspect' && e.inc === r.inc) this.#hooks.suspicionExpired(e, r.inc);
    });
    this.#hooks.broadcast({ kind: RecordKind.Suspect, ...r });
    this.#hooks.emit('update', e);
  }


  dead(r: { id: string; inc: number; from: string }, state: 'dead' | 'left'): void {
    const e = this.table.get(r.id);
    if (!e || r.inc < e.inc || e.state === 'dead' || e.state === 'left') return;
    if (e === this.self) {
      if (!this.leaving) this.refute(r.inc);
      return;
    }
    e.suspicion?.stop();
    e.suspicion = undefined;
    Object.assign(e, { inc: r.inc, state, since: this.#hooks.clock.now() });
    this.#toggleLive(e.id, -1);
    if (state === 'dead') this.deadIds.add(e.id);
    this.#hooks.broadcast(state === 'dead' ? { kind: RecordKind.Dead, ...r } : { kind: RecordKind.Left, id: r.id, inc: r.inc });
    this.#hooks.emit('leave', e);
  }

  /** Others think we are suspect or dead at incarnation inc: outbid it and tell everyone. */
  refute(inc: number): void {
    this.self.inc = Math.max(this.self.inc, inc) + 1;
    this.#hooks.refuted();
    this.#hooks.broadcast(this.record(this.self));
    this.#hooks.emit('update', this.self);
  }

  /** Counts a member into or out of the live set, keeping the digest in step. */
  #toggleLive(id: string, delta: 1 | -1): void {
    this.live += delta;
    const [a, b] = idHashes(id);
    this.digest[0] += delta;
    this.digest[1] = (this.digest[1] ^ a) >>> 0;
    this.digest[2] = (this.digest[2] ^ b) >>> 0;
  }

  /** A new or returning member is probed within the current round, at a random place. */
  #enqueueProbe(id: string): void {
    const lo = this.#probeIdx;
    const at = lo + Math.floor(this.#hooks.random() * (this.#probeOrder.length - lo + 1));
    this.#probeOrder.splice(at, 0, id);
  }
}
