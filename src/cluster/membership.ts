/**
 * SWIM membership (Das, Gupta, Motivala 2002) with the Lifeguard refinements that are cheap:
 * every member keeps the full view of the cluster, learns of changes by gossip piggybacked on
 * its probe traffic, and detects failures by probing one member per interval.
 *
 * Public API (all a caller needs; the protocol is docs/membership.md):
 *
 *   const m = new Membership({ id, url, transport, addr?, clock?, config?, random?, log? });
 *     id         "X" + 16 hex, this server's id; url its circuit:// URL (carried to others)
 *     transport  a PacketTransport (UdpTransport, or MemNetwork.transport() in simulations);
 *                the Membership owns it from now on and closes it in close()
 *     addr       the packet address to advertise, if not transport.addr (a 0.0.0.0 bind)
 *     config     overrides of defaultConfig (membership-config.ts)
 *     random     () => [0, 1), for probe order and peer choice (seed it in tests)
 *     log        (level, message) => void, for background failures (join attempts, bad packets)
 *   Probing starts at once; a lone member just waits to be joined.
 *
 *   m.members(): Member[]          live members (alive or suspect), itself included; local, instant
 *   m.member(id): Member | undefined  any member still remembered, dead and left ones too
 *   m.size                          number of live members, itself included
 *   m.incarnation, m.pendingBroadcasts   diagnostics
 *   await m.join(addr, { retry?, timeout? })  full-state sync with the member at packet address
 *                                   addr; rejects with EHOSTDOWN after config.joinAttempts failed
 *                                   attempts, or (retry: true) keeps trying with backoff until
 *                                   it succeeds or `timeout` ms pass (ETIMEDOUT); our own addr
 *                                   or a member already in view costs (almost) nothing
 *   await m.leave()                 tells the others we leave, then closes
 *   m.close()                       stops at once (others will find us dead)
 *   events: 'join' (member)   a member became live: new, or back after dead/left
 *           'leave' (member)  a live member became dead or left
 *           'update' (member) a live member changed: alive ↔ suspect, incarnation, url, addr
 *
 *   type Member = { id, url, addr, state: 'alive'|'suspect'|'dead'|'left', incarnation }
 */
import { EventEmitter } from 'node:events';
import { systemClock, type Clock, type TimerHandle } from '../kit/clock';
import { SystemError } from '../kit/errors';
import { backoffDelay } from '../kit/backoff';
import { Awareness } from './awareness';
import { BroadcastQueue } from './broadcast-queue';
import { defaultConfig, retransmitLimit, syncPeriod, type MembershipConfig } from './membership-config';
import { StateSync, type SyncResult } from './membership-sync';
import { decodePacket, decodeRecord, encodePacket, encodeRecord, MsgType, RecordKind } from './membership-wire';
import { MemberView, type Entry, type MemberState } from './membership-view';
import { pack } from 'msgpackr';
import type { PacketTransport } from './transport';

export type { MemberState };


export interface Member {
  id: string;
  url: string;
  addr: string;
  state: MemberState;
  incarnation: number;
}

export type LogFn = (level: 'debug' | 'info' | 'warn', message: string) => void;

export interface MembershipOptions {
  id: string;
  url: string;
  transport: PacketTransport;
  clock?: Clock;
  config?: Partial<MembershipConfig>;
  random?: () => number;
  log?: LogFn;
  /** The packet address others should use (default transport.addr); set it when the socket is
   *  bound to 0.0.0.0 or [::], which others cannot send to. */
  addr?: string;
  /** Starting incarnation (0); a restarted member refutes stale news about itself anyway. */
  incarnation?: number;
}

export interface JoinOptions {
  /** Keep trying (with backoff) until success, `timeout`, or close; default: joinAttempts tries. */
  retry?: boolean;
  /** Give up after this many ms with ETIMEDOUT. */
  timeout?: number;
}

/** Callbacks waiting for an Ack or Nack with a given sequence number, about a given target. */
interface AckWait {
  /** The probed member's id: an ack must name it (a replayed ack of another probe does not). */
  target: string;
  onAck: () => void;
  onNack?: () => void;
}

/** The events, typed (declaration merging with the class below). */
export interface Membership {
  on(event: 'join' | 'leave' | 'update', listener: (member: Member) => void): this;
  once(event: 'join' | 'leave' | 'update', listener: (member: Member) => void): this;
  off(event: 'join' | 'leave' | 'update', listener: (member: Member) => void): this;
}

// eslint-disable-next-line @typescript-eslint/no-unsafe-declaration-merging
export class Membership extends EventEmitter {
  readonly id: string;
  readonly url: string;
  readonly addr: string;
  readonly cfg: MembershipConfig;
  readonly #transport: PacketTransport;
  readonly #clock: Clock;
  readonly #random: () => number;
  readonly #log: LogFn;
  readonly #view: MemberView;
  readonly #queue: BroadcastQueue;
  readonly #awareness: Awareness;
  readonly #sync: StateSync;
  readonly #acks = new Map<number, AckWait>();
  readonly #timers = new Set<TimerHandle>();
  #seq = 0;
  #probeTimer: TimerHandle | undefined;
  #gossipTimer: TimerHandle | undefined;
  /** True while nobody else is live: probe and gossip tick slowly (an idle daemon's CPU). */
  #lone = false;
  #closed = false;
  readonly #joins = new Set<(err: Error) => void>();
  /** Full-state syncs we may still start, and when that count was last brought up to date. */
  #syncTokens: number;
  #syncTokensAt: number;
  /** When we last asked an unknown sender who it is, by id (bounded; see #askWhoIs). */
  readonly #asked = new Map<string, number>();

  constructor(opts: MembershipOptions) {
    super();
    this.id = opts.id;
    this.url = opts.url;
    this.#transport = opts.transport;
    this.addr = opts.addr ?? opts.transport.addr;
    this.cfg = { ...defaultConfig, ...opts.config };
    this.#clock = opts.clock ?? systemClock;
    this.#random = opts.random ?? Math.random;
    this.#syncTokens = this.cfg.fullSyncBurst;
    this.#syncTokensAt = this.#clock.now();
    this.#log = opts.log ?? (() => {});
    this.#view = new MemberView({ id: this.id, url: this.url, addr: this.addr, inc: opts.incarnation ?? 0 }, {
      cfg: this.cfg,
      clock: this.#clock,
      random: this.#random,
      broadcast: (r) => this.#queue.push(r.id, encodeRecord(r)),
      emit: (event, e) => this.#emit(event, e),
      suspicionExpired: (e, inc) => {
        if (!this.#closed) this.#lastChance(e, inc);
      },
      refuted: () => this.#awareness.apply(1),
    });
    this.#queue = new BroadcastQueue(() => retransmitLimit(this.cfg.retransmitMult, this.#view.live));
    this.#awareness = new Awareness(this.cfg.awarenessMax);
    this.#sync = new StateSync({
      cfg: this.cfg,
      send: (to, buf) => this.#transport.send(to, buf),
      stateRecords: () => this.#view.stateRecords(),
      digest: () => this.#view.digest,
      selfRecord: () => encodeRecord(this.#view.record(this.#view.self)),
      merge: (records, join) => this.#mergeSync(records, join),
      after: (ms, fn) => this.#after(ms, fn),
      cancel: (h) => this.#cancel(h),
    });
    this.#transport.onPacket((from, buf) => this.#onPacket(from, buf));
    this.#probeTimer = this.#after(this.#random() * this.cfg.probeInterval, () => this.#probeTick());
    this.#gossipTimer = this.#after(this.#random() * this.cfg.gossipInterval, () => this.#gossipTick());
    this.#after(this.#random() * this.cfg.syncInterval, () => this.#syncTick());
    this.#after(this.cfg.reconnectInterval * (0.5 + this.#random()), () => this.#reconnectTick());
  }

  // ---- public API -------------------------------------------------------------------------

  members(): Member[] {
    return this.#view.members().map(view);
  }

  member(id: string): Member | undefined {
    const e = this.#view.table.get(id);
    return e && view(e);
  }

  get size(): number {
    return this.#view.live;
  }

  /** Broadcasts waiting to be piggybacked (diagnostics: 0 once news has spread). */
  get pendingBroadcasts(): number {
    return this.#queue.length;
  }

  /** Our incarnation number (grows each time we refute a suspicion). */
  get incarnation(): number {
    return this.#view.self.inc;
  }

  join(addr: string, opts: JoinOptions = {}): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      if (this.#closed) return reject(closedError());
      const start = this.#clock.now();
      const deadline = opts.timeout === undefined ? Infinity : start + opts.timeout;
      const maxAttempts = opts.retry ? Infinity : Math.max(1, this.cfg.joinAttempts);
      const fail = (err: Error) => {
        this.#joins.delete(fail);
        reject(err);
      };
      this.#joins.add(fail);
      // Joining ourselves, or a member we already see live (discovery repeats joins), is
      // cheap: nothing, or a digest check that moves state only if the views differ.
      if (addr === this.addr) {
        this.#joins.delete(fail);
        return resolve();
      }
      const known = this.#view.members().some((e) => e.addr === addr && e !== this.#view.self);
      const attempt = (n: number) => {
        if (this.#closed) return;
        const budget = Math.max(1, Math.min(this.cfg.syncTimeout, deadline - this.#clock.now()));
        this.#sync.start(addr, known ? 'check' : 'join', budget, (r) => {
          if (this.#closed) return;
          if (r !== 'failed') {
            this.#joins.delete(fail);
            if (!known) this.#scheduleCatchUp();
            return resolve();
          }
          this.#log('warn', `join ${addr}: attempt ${n + 1} failed: no answer within ${budget} ms`);
          const delay = backoffDelay(n, { initial: this.cfg.joinBackoffInitial, factor: this.cfg.joinBackoffFactor, max: this.cfg.joinBackoffMax, spread: 0.4 }, this.#random());
          if (n + 1 >= maxAttempts) return fail(new SystemError('EHOSTDOWN', `cannot join ${addr}: no answer after ${n + 1} attempts`));
          if (this.#clock.now() + delay >= deadline) return fail(new SystemError('ETIMEDOUT', `cannot join ${addr}: no answer within ${opts.timeout} ms`));
          this.#after(delay, () => attempt(n + 1));
        });
      };
      attempt(0);
    });
  }

  /**
   * News of members that joined shortly before us may still have been spreading when our join
   * target answered; once that gossip has died down, one more sync (with someone else) fills
   * the gap, without gossiping what it brings.
   */
  #scheduleCatchUp(): void {
    const rounds = retransmitLimit(this.cfg.retransmitMult, Math.max(this.#view.live, 2));
    this.#after(rounds * this.cfg.gossipInterval, () => {
      const [peer] = this.#view.randomLive(1);
      if (peer) this.#sync.start(peer.addr, 'join', this.cfg.syncTimeout, () => {});
    });
  }

  leave(): Promise<void> {
    if (this.#closed || this.#view.leaving) return Promise.resolve();
    this.#view.leaving = true;
    this.#cancel(this.#probeTimer);
    this.#queue.push(this.id, encodeRecord({ kind: RecordKind.Left, id: this.id, inc: this.#view.self.inc }));
    // Tell a few members right away; acks and gossip rounds carry it further until we close.
    this.#gossipRound(this.cfg.gossipNodes * 2);
    return new Promise((resolve) => {
      this.#after(this.cfg.leaveTimeout, () => {
        this.close();
        resolve();
      });
    });
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const h of this.#timers) this.#clock.clearTimeout(h);
    this.#timers.clear();
    this.#view.stop();
    this.#sync.close();
    this.#acks.clear();
    this.#queue.clear();
    for (const fail of [...this.#joins]) fail(closedError());
    this.#transport.close();
  }

  // ---- timers -----------------------------------------------------------------------------

  #after(ms: number, fn: () => void): TimerHandle {
    const h = this.#clock.setTimeout(() => {
      this.#timers.delete(h);
      if (!this.#closed) fn();
    }, ms);
    this.#timers.add(h);
    return h;
  }

  #cancel(h: TimerHandle | undefined): void {
    if (!h) return;
    this.#clock.clearTimeout(h);
    this.#timers.delete(h);
  }

  // ---- probing ----------------------------------------------------------------------------

  #probeTick(): void {
    const interval = this.#awareness.scale(this.cfg.probeInterval);
    const target = this.#view.nextTarget();
    if (target) this.#probe(target, interval);
    this.#lone = !target && this.#view.live <= 1;
    this.#probeTimer = this.#after(this.#lone ? Math.max(interval, LONE_TICK_MS) : interval, () => this.#probeTick());
  }

  #probe(target: Entry, interval: number): void {
    const seq = ++this.#seq;
    let acked = false;
    let nacks = 0;
    let expectedNacks = 0;
    this.#acks.set(seq, { target: target.id, onAck: () => (acked = true), onNack: () => nacks++ });
    // Lifeguard "buddy system": tell a suspect it is suspected, so it can refute at once.
    const first = target.state === 'suspect' ? [encodeRecord({ kind: RecordKind.Suspect, id: target.id, inc: target.inc, from: this.id })] : [];
    this.#sendWithGossip(target.addr, target.id, [MsgType.Ping, seq, target.id, this.id], first, target.id);
    const inc = target.inc;
    this.#after(this.#awareness.scale(this.cfg.probeTimeout), () => {
      if (acked) return;
      // Ask k others to try, and try once more ourselves (the first ping or its ack may have
      // been lost; memberlist sends a TCP ping here, we stay on datagrams).
      this.#transport.send(target.addr, encodePacket([MsgType.Ping, seq, target.id, this.id], first), target.id);
      for (const via of this.#view.randomLive(this.cfg.indirectChecks, target.id)) {
        expectedNacks++;
        this.#transport.send(via.addr, encodePacket([MsgType.IndirectPing, seq, target.id, target.addr, this.id]), via.id);
      }
    });
    this.#after(interval, () => {
      this.#acks.delete(seq);
      if (acked) return this.#awareness.apply(-1);
      // Fewer nacks than asked for: the trouble may be ours, so slow down a little.
      this.#awareness.apply(expectedNacks > 0 ? Math.max(0, expectedNacks - nacks) : 0);
      const e = this.#view.table.get(target.id);
      if (e === target && e.inc === inc && (e.state === 'alive' || e.state === 'suspect')) {
        this.#log('debug', `${this.id}: probe of ${target.id} failed; suspecting it`);
        this.#view.suspect({ id: target.id, inc, from: this.id });
      }
    });
  }

  // ---- gossip and anti-entropy ------------------------------------------------------------

  #gossipTick(): void {
    if (this.#queue.length > 0) this.#gossipRound(this.cfg.gossipNodes);
    const next = this.#lone && this.#queue.length === 0 ? Math.max(this.cfg.gossipInterval, LONE_TICK_MS) : this.cfg.gossipInterval;
    this.#gossipTimer = this.#after(next, () => this.#gossipTick());
  }

  #gossipRound(nodes: number): void {
    for (const e of this.#view.randomLive(nodes)) {
      if (this.#queue.length === 0) break;
      this.#sendWithGossip(e.addr, e.id, [MsgType.Gossip, this.id], [], e.id);
    }
  }

  /**
   * The anti-entropy round: compare digests with one random member every syncInterval. When
   * the views differ, full state moves, which costs a token (#syncTokens); without a token the
   * check waits until one is earned. Tokens come one per syncPeriod(n), which grows with the
   * cluster, so the full-state bytes a member spends per second stay flat; up to
   * fullSyncBurst of them are saved, so that after a burst of joins, anti-entropy keeps
   * repairing what gossip missed instead of falling silent for syncPeriod(n) (15 min at
   * n = 1 000) after its first full sync, which is what made convergence after 1 000 staggered
   * joins take anywhere from 9 to 71 s.
   */
  #syncTick(): void {
    const period = syncPeriod(this.cfg, this.#view.live);
    const now = this.#clock.now();
    this.#syncTokens = Math.min(this.cfg.fullSyncBurst, this.#syncTokens + (now - this.#syncTokensAt) / period);
    this.#syncTokensAt = now;
    const jitter = () => 0.75 + 0.5 * this.#random();
    if (this.#syncTokens < 1) {
      this.#after(Math.max(this.cfg.syncInterval, (1 - this.#syncTokens) * period) * jitter(), () => this.#syncTick());
      return;
    }
    const [peer] = this.#view.randomLive(1);
    const next = (r: SyncResult) => {
      if (r === 'synced') this.#syncTokens -= 1;
      this.#after(this.cfg.syncInterval * jitter(), () => this.#syncTick());
    };
    if (peer) this.#sync.start(peer.addr, 'check', this.cfg.syncTimeout, next);
    else next('same');
  }

  /** Tries one random dead member again: if it answers, a partition has healed. */
  #reconnectTick(): void {
    if (this.#view.deadIds.size > 0) {
      const ids = [...this.#view.deadIds];
      const e = this.#view.table.get(ids[Math.floor(this.#random() * ids.length)]!);
      if (e && e.state === 'dead') this.#sync.start(e.addr, 'sync', this.cfg.syncTimeout, () => {});
    }
    this.#after(this.cfg.reconnectInterval * (0.5 + this.#random()), () => this.#reconnectTick());
  }

  /** Sends header + `first` + as many queued broadcasts as fit in one packet, to member toId. */
  #sendWithGossip(to: string, toId: string | undefined, header: unknown[], first: Buffer[], about?: string): void {
    const head = pack(header);
    let room = this.cfg.packetSize - head.length;
    for (const b of first) room -= b.length;
    const records = this.#queue.take(room, first.length > 0 ? about : undefined);
    this.#transport.send(to, Buffer.concat([head, ...first, ...records]), toId);
  }

  // ---- incoming packets -------------------------------------------------------------------

  #onPacket(from: string, buf: Buffer): void {
    if (this.#closed) return;
    let header: unknown[];
    let records: unknown[];
    try {
      ({ header, records } = decodePacket(buf));
    } catch (err) {
      this.#log('debug', `dropped a malformed packet from ${from}: ${(err as Error).message}`);
      return;
    }
    const type = header[0] as MsgType;
    if (type === MsgType.SyncReq || type === MsgType.SyncPart) {
      if (type === MsgType.SyncReq) {
        this.#mergeSync(records, false);
        this.#sync.onRequest(from, header);
      } else this.#sync.onPart(header, records);
      return;
    }
    let doubted = false; // the packet says we are suspect or dead
    for (const raw of records) {
      if (this.#view.isOldAlive(raw)) continue; // the bulk of gossip: news we already have
      const r = decodeRecord(raw);
      if (!r) continue;
      if (r.id === this.id && (r.kind === RecordKind.Suspect || r.kind === RecordKind.Dead)) doubted = true;
      this.#view.apply(r, true);
    }
    // Answer doubt directly with our current record (stale news included: its sender may still
    // be counting down on us and have missed our refutation). Pings get it in the ack.
    if (doubted && type !== MsgType.Ping && !this.#view.leaving) {
      this.#transport.send(from, encodePacket([MsgType.Gossip, this.id], [encodeRecord(this.#view.record(this.#view.self))]));
    }
    const sender = type === MsgType.Ping ? header[3] : type === MsgType.IndirectPing ? header[4] : type === MsgType.Gossip ? header[1] : undefined;
    if (typeof sender === 'string' && !this.#view.table.has(sender)) this.#askWhoIs(from, sender);
    switch (type) {
      case MsgType.Ping:
        return this.#onPing(from, header, doubted);
      case MsgType.IndirectPing:
        return this.#onIndirectPing(from, header);
      case MsgType.Ack:
        return this.#ackWait(header)?.onAck();
      case MsgType.Nack:
        return this.#ackWait(header)?.onNack?.();
      default:
        return; // Gossip: records only; unknown types from newer versions are ignored
    }
  }

  /** The probe an Ack or Nack [type, seq, target] answers, if it names that probe's target. */
  #ackWait(header: unknown[]): AckWait | undefined {
    const w = this.#acks.get(header[1] as number);
    return w && header[2] === w.target ? w : undefined;
  }

  /** A member we never heard of talks to us: ask it for its record (once in a while per id). */
  #askWhoIs(from: string, id: string): void {
    const now = this.#clock.now();
    const last = this.#asked.get(id);
    if (last !== undefined && now - last < this.cfg.syncTimeout) return;
    if (this.#asked.size > 1024) this.#asked.clear();
    this.#asked.set(id, now);
    this.#sync.start(from, 'self', this.cfg.syncTimeout, () => {});
  }

  #onPing(from: string, header: unknown[], doubted: boolean): void {
    const [, seq, target, sender] = header as [number, number, string, string];
    if (target !== this.id) return; // meant for a previous owner of this address
    // A member we hold dead is still talking: tell it, so it refutes and comes back.
    const s = typeof sender === 'string' ? this.#view.table.get(sender) : undefined;
    const first = s && s.state === 'dead' ? [encodeRecord(this.#view.record(s))] : [];
    if (doubted && !this.#view.leaving) first.push(encodeRecord(this.#view.record(this.#view.self)));
    this.#sendWithGossip(from, typeof sender === 'string' ? sender : undefined, [MsgType.Ack, seq, this.id], first, s?.id);
  }

  #onIndirectPing(from: string, header: unknown[]): void {
    const [, seq, target, targetAddr, requester] = header as [number, number, string, string, string];
    if (typeof targetAddr !== 'string' || typeof target !== 'string') return;
    const back = typeof requester === 'string' ? requester : undefined;
    const mine = ++this.#seq;
    let done = false;
    const timer = this.#after(this.#awareness.scale(this.cfg.probeTimeout), () => {
      this.#acks.delete(mine);
      if (!done) this.#transport.send(from, encodePacket([MsgType.Nack, seq, target]), back);
    });
    this.#acks.set(mine, {
      target,
      onAck: () => {
        done = true;
        this.#acks.delete(mine);
        this.#cancel(timer);
        this.#transport.send(from, encodePacket([MsgType.Ack, seq, target]), back);
      },
    });
    this.#transport.send(targetAddr, encodePacket([MsgType.Ping, mine, target, this.id]), target);
  }

  /**
   * Applies records from a sync. News learned from our own join answer is not gossiped on
   * (everyone else knows it already); news from other syncs is, since it differs from what we
   * had. A remote "dead" only makes the member suspect here: it gets its chance to refute.
   */
  #mergeSync(raws: unknown[], joinAnswer: boolean): void {
    for (const raw of raws) {
      const r = decodeRecord(raw);
      if (!r) continue;
      if (r.kind === RecordKind.Dead) this.#view.suspect({ id: r.id, inc: r.inc, from: r.from });
      else this.#view.apply(r, !joinAnswer);
    }
  }

  // ---- state transitions ------------------------------------------------------------------

  /**
   * Before declaring a suspect dead, ping it once more (twice, against loss), telling it that
   * it is suspected: a live member answers with its refutation, which we may have missed in
   * the gossip. Costs one probe timeout of detection time; saves a false death under loss.
   */
  #lastChance(e: Entry, inc: number): void {
    const seq = ++this.#seq;
    let acked = false;
    this.#acks.set(seq, { target: e.id, onAck: () => (acked = true) });
    const doubt = [encodeRecord({ kind: RecordKind.Suspect, id: e.id, inc, from: this.id })];
    const ping = encodePacket([MsgType.Ping, seq, e.id, this.id], doubt);
    this.#transport.send(e.addr, ping, e.id);
    this.#transport.send(e.addr, ping, e.id);
    this.#after(this.#awareness.scale(this.cfg.probeTimeout), () => {
      this.#acks.delete(seq);
      if (this.#view.table.get(e.id) !== e || e.state !== 'suspect' || e.inc !== inc) return; // refuted meanwhile
      if (!acked) return this.#view.dead({ id: e.id, inc, from: this.id }, 'dead');
      // It answered but no refutation came with the answer: suspect it afresh.
      e.suspicion?.stop();
      e.state = 'alive';
      this.#view.suspect({ id: e.id, inc, from: this.id });
    });
  }

  #emit(event: 'join' | 'leave' | 'update', e: Entry): void {
    // The first member to join a lone one wakes its probe and gossip loops at once.
    if (event === 'join' && this.#lone && e.id !== this.id) {
      this.#lone = false;
      this.#cancel(this.#probeTimer);
      this.#cancel(this.#gossipTimer);
      this.#probeTimer = this.#after(0, () => this.#probeTick());
      this.#gossipTimer = this.#after(0, () => this.#gossipTick());
    }
    try {
      this.emit(event, view(e));
    } catch (err) {
      this.#log('warn', `a ${event} listener threw: ${(err as Error).message}`);
    }
  }
}

/** How often a member with nobody else in view wakes up to probe and gossip, ms. */
const LONE_TICK_MS = 2000;

function view(e: Entry): Member {
  return { id: e.id, url: e.url, addr: e.addr, state: e.state, incarnation: e.inc };
}

function closedError(): SystemError {
  return new SystemError('ECANCELED', 'membership closed');
}
