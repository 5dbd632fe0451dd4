/**
 * Membership datagrams under a cluster key: discovery-mac.ts's envelope (timestamp, random id,
 * HMAC-SHA256 under the "membership" MAC key, replay window) around
 *
 *   u8 length | sender's member id | u8 length | destination member id ("" if unknown) | datagram
 *
 * so the MAC binds each datagram to who sent it and to whom. A receiver drops a datagram
 * addressed to another member: a captured ack (or ping, or gossip) replayed to a third member
 * is dropped there, where the replay window alone would have let it in once. The destination is
 * the id the caller names (membership names it for probes, acks and gossip) or, for a reply to
 * an address, the id last seen sending from that address; only a datagram to an address that
 * never sent us one (a join's first request) goes unaddressed, and is accepted by whoever gets
 * it. Without a key membership datagrams go as they are (no envelope), as in the original.
 */
import { openDatagram, ReplayWindow, sealDatagram } from './discovery-mac';
import type { PacketTransport } from './transport';

const MAX_ID_BYTES = 64;
/** Addresses whose sender id is remembered (for replies); the oldest are forgotten first. */
const MAX_LEARNED = 4096;

export class SealedTransport implements PacketTransport {
  readonly #seen = new ReplayWindow(16384);
  readonly #learned = new Map<string, string>();
  readonly #self: Buffer;
  /** Datagrams dropped because they were addressed to another member (for tests). */
  misaddressed = 0;

  constructor(
    readonly inner: PacketTransport,
    readonly key: Buffer,
    readonly selfId: string,
    readonly now: () => number = Date.now,
  ) {
    this.#self = Buffer.from(selfId, 'utf8');
    if (this.#self.length > MAX_ID_BYTES) throw new Error(`member id too long: ${selfId}`);
  }

  get addr(): string {
    return this.inner.addr;
  }

  send(to: string, buf: Buffer, toId?: string): void {
    const dest = Buffer.from(toId ?? this.#learned.get(to) ?? '', 'utf8');
    if (dest.length > MAX_ID_BYTES) return;
    const head = Buffer.from([this.#self.length]);
    const payload = Buffer.concat([head, this.#self, Buffer.from([dest.length]), dest, buf]);
    this.inner.send(to, sealDatagram(this.key, payload, this.now(), 'membership'));
  }

  onPacket(handler: (from: string, buf: Buffer) => void): void {
    this.inner.onPacket((from, raw) => {
      const p = openDatagram(this.key, raw, this.now(), undefined, this.#seen, 'membership');
      if (!p) return;
      const fromLen = p[0] ?? 0;
      const toAt = 1 + fromLen;
      if (fromLen > MAX_ID_BYTES || toAt >= p.length) return;
      const toLen = p[toAt]!;
      const bodyAt = toAt + 1 + toLen;
      if (toLen > MAX_ID_BYTES || bodyAt > p.length) return;
      const to = p.subarray(toAt + 1, bodyAt);
      if (to.length > 0 && !to.equals(this.#self)) {
        this.misaddressed++;
        return;
      }
      this.#learn(from, p.toString('utf8', 1, toAt));
      handler(from, p.subarray(bodyAt));
    });
  }

  close(): void {
    this.inner.close();
  }

  #learn(addr: string, id: string): void {
    if (this.#learned.get(addr) === id) return;
    this.#learned.delete(addr);
    this.#learned.set(addr, id);
    if (this.#learned.size > MAX_LEARNED) this.#learned.delete(this.#learned.keys().next().value as string);
  }
}
