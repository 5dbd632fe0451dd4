/**
 * What membership needs from the network: best-effort datagrams to and from string addresses.
 * Packets may be lost, duplicated or reordered; nothing here retries. Reliability where it is
 * needed (the multi-packet state sync) is built on top, in membership-sync.ts.
 *
 * Implementations: transport-mem.ts (an in-memory network for simulations, shipped so other
 * layers can test against it) and transport-udp.ts (dgram).
 */
export interface PacketTransport {
  /** The address others send to, as they should write it (for UDP "127.0.0.1:7946"). */
  readonly addr: string;
  /**
   * Sends one datagram; errors (no route, closed) are swallowed: datagrams are best effort.
   * `toId` names the member meant to receive it, where the sender knows it; a keyed transport
   * binds the datagram to it (membership-seal.ts), others ignore it.
   */
  send(to: string, buf: Buffer, toId?: string): void;
  /** Installs the one handler for incoming datagrams; `from` is the sender's address. */
  onPacket(handler: (from: string, buf: Buffer) => void): void;
  /** Stops sending and receiving; idempotent. */
  close(): void;
}
