/**
 * The transmit-limited broadcast queue. Every change of the local view (a member joined, is
 * suspected, died, left) is queued once, keyed by the member it is about, and piggybacked on
 * the following outgoing packets until it has been sent `limit(n)` times, where n is the
 * cluster size (retransmitMult · ceil(log10(n + 1))): enough for infection-style gossip to
 * reach everyone with high probability, and no more.
 *
 * A newer item about a member replaces the older one outright: only the latest news about a
 * member is worth bytes. Items sent fewer times go first, and among those the newest first, so
 * fresh news spreads before stale news is repeated.
 *
 * Mechanism: one array per transmit count ("bucket"); taking an item moves it to the next
 * bucket. Replaced or exhausted items are left in their arrays as stale entries and skipped,
 * and a bucket is compacted when most of it is stale, so each packet costs about the number
 * of items it carries, not the queue length.
 */
interface Item {
  key: string;
  bytes: Buffer;
  transmits: number;
  /** False once replaced or exhausted; its array entries are stale then. */
  live: boolean;
}

export class BroadcastQueue {
  readonly #byKey = new Map<string, Item>();
  #buckets: Item[][] = [];
  #stale = 0;
  /** Transmissions allowed for one item, given the current cluster size. */
  readonly #limit: () => number;

  constructor(limit: () => number) {
    this.#limit = limit;
  }

  /** Queues bytes about key, replacing any older item about the same key. */
  push(key: string, bytes: Buffer): void {
    const old = this.#byKey.get(key);
    if (old) {
      this.#kill(old);
      this.#stale++;
    }
    const item: Item = { key, bytes, transmits: 0, live: true };
    this.#byKey.set(key, item);
    this.#bucket(0).push(item);
  }

  /**
   * Takes items whose sizes add up to at most `room` bytes, fewest-sent and newest first,
   * counting one transmission for each. `skip` leaves out an item about that key (already in
   * the packet for another reason).
   */
  take(room: number, skip?: string): Buffer[] {
    const out: Buffer[] = [];
    const taken: Item[] = [];
    let misses = 0; // items too big for the room left: after a few, the packet is full enough
    for (let t = 0; t < this.#buckets.length && room > 0 && misses < 16; t++) {
      const b = this.#buckets[t]!;
      for (let i = b.length - 1; i >= 0 && room > 0 && misses < 16; i--) {
        const it = b[i]!;
        const stale = !it.live || it.transmits !== t;
        if (stale && i === b.length - 1) {
          b.pop();
          this.#stale = Math.max(0, this.#stale - 1);
          continue;
        }
        if (stale || it.key === skip) continue;
        if (it.bytes.length > room) {
          misses++;
          continue;
        }
        room -= it.bytes.length;
        out.push(it.bytes);
        taken.push(it);
      }
    }
    // Re-file after the scan, so an item is never met twice in one call; the entry left in
    // its old bucket becomes stale because its transmit count no longer matches.
    const limit = this.#limit();
    for (const it of taken) {
      it.transmits++;
      this.#stale++;
      if (it.transmits >= limit) this.#kill(it);
      else this.#bucket(it.transmits).push(it);
    }
    this.#maybeCompact();
    return out;
  }

  /** Items waiting to be sent. */
  get length(): number {
    return this.#byKey.size;
  }

  /** True if an item about key is queued. */
  has(key: string): boolean {
    return this.#byKey.has(key);
  }

  /** Drops everything (on close). */
  clear(): void {
    this.#byKey.clear();
    this.#buckets = [];
    this.#stale = 0;
  }

  #kill(it: Item): void {
    if (!it.live) return;
    it.live = false;
    if (this.#byKey.get(it.key) === it) this.#byKey.delete(it.key);
  }

  #bucket(t: number): Item[] {
    while (this.#buckets.length <= t) this.#buckets.push([]);
    return this.#buckets[t]!;
  }

  #maybeCompact(): void {
    if (this.#stale < 64 || this.#stale < this.#byKey.size) return;
    const next: Item[][] = [];
    for (let t = 0; t < this.#buckets.length; t++) {
      next.push(this.#buckets[t]!.filter((it) => it.live && it.transmits === t));
    }
    this.#buckets = next;
    this.#stale = 0;
  }
}
