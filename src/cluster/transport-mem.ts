/**
 * An in-memory datagram network for simulations: many PacketTransports in one process, driven
 * by a Clock (a ManualClock or SimClock in tests, so nothing sleeps). It can delay, lose
 * (seeded, so runs repeat exactly) and partition traffic, and it counts bytes and packets per
 * member. Shipped in src, like memberlist's MockNetwork, so other layers can reuse it.
 *
 * Delivery uses one clock timer for the whole network (armed for the earliest packet in a
 * heap), not one per packet, so a thousand busy members stay cheap to simulate.
 */
import type { Clock, TimerHandle } from '../kit/clock';
import type { PacketTransport } from './transport';

/** A small seeded PRNG (mulberry32): uniform in [0, 1), the same sequence for the same seed. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A min-heap of items ordered by (at, seq): shared by the network queue and SimClock. */
class TimeHeap<T extends { at: number; seq: number }> {
  readonly #a: T[] = [];
  get size(): number {
    return this.#a.length;
  }
  peek(): T | undefined {
    return this.#a[0];
  }
  push(x: T): void {
    const a = this.#a;
    a.push(x);
    let i = a.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!less(a[i]!, a[p]!)) break;
      [a[i], a[p]] = [a[p]!, a[i]!];
      i = p;
    }
  }
  pop(): T | undefined {
    const a = this.#a;
    const top = a[0];
    const last = a.pop();
    if (a.length > 0 && last) {
      a[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < a.length && less(a[l]!, a[m]!)) m = l;
        if (r < a.length && less(a[r]!, a[m]!)) m = r;
        if (m === i) break;
        [a[i], a[m]] = [a[m]!, a[i]!];
        i = m;
      }
    }
    return top;
  }
}
function less(x: { at: number; seq: number }, y: { at: number; seq: number }): boolean {
  return x.at < y.at || (x.at === y.at && x.seq < y.seq);
}

/**
 * A manual clock with a timer heap: the same contract as kit/clock's ManualClock (time moves
 * only in advance(), due timers fire in time order, ties in creation order), but O(log n) per
 * timer, for simulations with thousands of timers.
 */
export class SimClock implements Clock {
  #now: number;
  #seq = 0;
  #nextId = 1;
  readonly #heap = new TimeHeap<{ at: number; seq: number; id: number; fn: () => void }>();
  readonly #live = new Set<number>();
  constructor(start = 0) {
    this.#now = start;
  }
  now(): number {
    return this.#now;
  }
  setTimeout(fn: () => void, ms: number): TimerHandle {
    const id = this.#nextId++;
    this.#live.add(id);
    this.#heap.push({ at: this.#now + Math.max(0, ms), seq: this.#seq++, id, fn });
    return { id };
  }
  clearTimeout(h: TimerHandle | undefined): void {
    if (h) this.#live.delete(h.id);
  }
  /** Moves time forward by ms, firing every timer that falls due, in order. */
  advance(ms: number): void {
    const end = this.#now + ms;
    for (;;) {
      const top = this.#heap.peek();
      if (!top || top.at > end) break;
      this.#heap.pop();
      if (!this.#live.delete(top.id)) continue;
      this.#now = Math.max(this.#now, top.at);
      top.fn();
    }
    this.#now = end;
  }
  pending(): number {
    return this.#live.size;
  }
}

export interface MemNetworkOptions {
  clock: Clock;
  /** One-way delay of every packet (ms), default 1. */
  latency?: number;
  /** Extra uniform random delay in [0, jitter) (ms), default 0; reorders packets. */
  jitter?: number;
  /** Probability that a packet is lost, default 0. */
  loss?: number;
  /** Seed of the PRNG behind loss and jitter. */
  seed?: number;
}

/** Bytes and packets one member sent and received. */
export interface MemStats {
  bytesSent: number;
  packetsSent: number;
  bytesReceived: number;
  packetsReceived: number;
}

interface InFlight {
  at: number;
  seq: number;
  from: string;
  to: string;
  buf: Buffer;
}

export class MemNetwork {
  readonly clock: Clock;
  latency: number;
  jitter: number;
  loss: number;
  readonly #random: () => number;
  readonly #endpoints = new Map<string, MemTransport>();
  readonly #stats = new Map<string, MemStats>();
  readonly #queue = new TimeHeap<InFlight>();
  #seq = 0;
  #timer: TimerHandle | undefined;
  #timerAt = Infinity;
  /** Partition groups: a packet between two addresses in different groups is dropped. */
  #group = new Map<string, number>();
  #nextAddr = 1;
  /** The largest datagram sent so far (bytes), to check packet-size budgets. */
  largestPacket = 0;

  constructor(opts: MemNetworkOptions) {
    this.clock = opts.clock;
    this.latency = opts.latency ?? 1;
    this.jitter = opts.jitter ?? 0;
    this.loss = opts.loss ?? 0;
    this.#random = seededRandom(opts.seed ?? 1);
  }

  /** A new endpoint; addr defaults to "mem-N". Reusing the address of a closed one is allowed. */
  transport(addr?: string): MemTransport {
    const a = addr ?? `mem-${this.#nextAddr++}`;
    const old = this.#endpoints.get(a);
    if (old && !old.closed) throw new Error(`address in use: ${a}`);
    const t = new MemTransport(this, a);
    this.#endpoints.set(a, t);
    if (!this.#stats.has(a)) this.#stats.set(a, zeroStats());
    return t;
  }

  /** Cuts every path between a member of groupA and a member of groupB (both ways). */
  partition(groupA: string[], groupB: string[]): void {
    const ga = this.#group.size === 0 ? 1 : Math.max(...this.#group.values()) + 1;
    for (const a of groupA) this.#group.set(a, ga);
    for (const b of groupB) this.#group.set(b, ga + 1);
  }

  /** Removes every partition. */
  heal(): void {
    this.#group.clear();
  }

  /** Counters of one address (zeros if it never existed). */
  stats(addr: string): MemStats {
    return { ...(this.#stats.get(addr) ?? zeroStats()) };
  }

  /** Zeroes every counter (to measure a window). */
  resetStats(): void {
    for (const k of this.#stats.keys()) this.#stats.set(k, zeroStats());
  }

  /** Packets accepted for delivery and not yet delivered or dropped. */
  get inFlight(): number {
    return this.#queue.size;
  }

  /** @internal called by MemTransport.send */
  _send(from: string, to: string, buf: Buffer): void {
    if (buf.length > this.largestPacket) this.largestPacket = buf.length;
    const s = this.#stats.get(from);
    if (s) {
      s.bytesSent += buf.length;
      s.packetsSent++;
    }
    if (this.loss > 0 && this.#random() < this.loss) return;
    const delay = this.latency + (this.jitter > 0 ? this.#random() * this.jitter : 0);
    // copy: the sender may reuse its buffer, as a kernel would not care
    this.#queue.push({ at: this.clock.now() + delay, seq: this.#seq++, from, to, buf: Buffer.from(buf) });
    this.#arm();
  }

  #cut(a: string, b: string): boolean {
    if (this.#group.size === 0) return false;
    const ga = this.#group.get(a);
    const gb = this.#group.get(b);
    return ga !== undefined && gb !== undefined && ga !== gb;
  }

  #arm(): void {
    const top = this.#queue.peek();
    if (!top || top.at >= this.#timerAt) return;
    this.clock.clearTimeout(this.#timer);
    this.#timerAt = top.at;
    this.#timer = this.clock.setTimeout(() => this.#deliver(), top.at - this.clock.now());
  }

  #deliver(): void {
    this.#timer = undefined;
    this.#timerAt = Infinity;
    const now = this.clock.now();
    for (;;) {
      const p = this.#queue.peek();
      if (!p || p.at > now) break;
      this.#queue.pop();
      if (this.#cut(p.from, p.to)) continue;
      const ep = this.#endpoints.get(p.to);
      if (!ep || ep.closed) continue;
      const s = this.#stats.get(p.to);
      if (s) {
        s.bytesReceived += p.buf.length;
        s.packetsReceived++;
      }
      ep._receive(p.from, p.buf);
    }
    this.#arm();
  }
}

function zeroStats(): MemStats {
  return { bytesSent: 0, packetsSent: 0, bytesReceived: 0, packetsReceived: 0 };
}

/** One endpoint of a MemNetwork. */
export class MemTransport implements PacketTransport {
  readonly addr: string;
  closed = false;
  readonly #net: MemNetwork;
  #handler: ((from: string, buf: Buffer) => void) | undefined;

  constructor(net: MemNetwork, addr: string) {
    this.#net = net;
    this.addr = addr;
  }
  send(to: string, buf: Buffer): void {
    if (!this.closed) this.#net._send(this.addr, to, buf);
  }
  onPacket(handler: (from: string, buf: Buffer) => void): void {
    this.#handler = handler;
  }
  close(): void {
    this.closed = true;
  }
  /** @internal */
  _receive(from: string, buf: Buffer): void {
    this.#handler?.(from, buf);
  }
}
