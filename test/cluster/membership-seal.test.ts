import t from 'tap';
import { randomBytes } from 'node:crypto';
import { Membership } from '../../src/cluster/membership';
import { SealedTransport } from '../../src/cluster/membership-seal';
import { decodePacket, encodePacket, MsgType } from '../../src/cluster/membership-wire';
import { openDatagram } from '../../src/cluster/discovery-mac';
import { MemNetwork, SimClock, seededRandom } from '../../src/cluster/transport-mem';
import type { PacketTransport } from '../../src/cluster/transport';
import { memberId, advanceUntil, settle } from './membership-helpers';

/**
 * Issue 10 point 6: membership datagrams are bound to sender and destination, and an ack names
 * the probe's target, so a captured ack replayed to a third member does not keep a dead member
 * alive there.
 */
const key = randomBytes(64);
const START = 1_700_000_000_000; // datagram timestamps come from the sim clock

/** Records every datagram an endpoint sends (what an attacker on the path captures). */
class Tap implements PacketTransport {
  readonly sent: Array<{ to: string; buf: Buffer }> = [];
  constructor(readonly inner: PacketTransport) {}
  get addr(): string {
    return this.inner.addr;
  }
  send(to: string, buf: Buffer): void {
    this.sent.push({ to, buf: Buffer.from(buf) });
    this.inner.send(to, buf);
  }
  onPacket(h: (from: string, buf: Buffer) => void): void {
    this.inner.onPacket(h);
  }
  close(): void {
    this.inner.close();
  }
}

t.test('membership seal: a datagram reaches the member it names and no other', async (t) => {
  const clock = new SimClock(START);
  const net = new MemNetwork({ clock });
  const got: Record<string, Buffer[]> = { a: [], b: [], c: [] };
  const ep = (name: string, id: string) => {
    const s = new SealedTransport(net.transport(name), key, id, () => clock.now());
    s.onPacket((_from, buf) => got[name]!.push(buf));
    return s;
  };
  const a = ep('a', memberId(1));
  const b = ep('b', memberId(2));
  const c = ep('c', memberId(3));
  const tap = new Tap(net.transport('attacker'));
  a.send('b', Buffer.from('to b'), memberId(2));
  a.send('c', Buffer.from('to whoever'));
  clock.advance(5);
  t.same(got.b, [Buffer.from('to b')]);
  t.same(got.c, [Buffer.from('to whoever')], 'an unaddressed datagram (first contact) is accepted');
  // b now knows who sent from 'a': its reply there is addressed to a's id without being told
  const captured: Buffer[] = [];
  const spy = new Tap({ addr: 'b', send: (_to, buf) => captured.push(buf), onPacket: () => undefined, close: () => undefined });
  const b2 = new SealedTransport(spy, key, memberId(2), () => clock.now());
  b2.send('a', Buffer.from('reply'), memberId(1));
  // the attacker replays b's datagram for a to c, and a datagram named for c to b
  tap.send('c', captured[0]!);
  tap.send('a', captured[0]!);
  clock.advance(5);
  t.equal(got.c.length, 1, 'c drops a datagram addressed to a');
  t.equal(c.misaddressed, 1);
  t.same(got.a, [Buffer.from('reply')], 'a, the member it names, accepts it');
  tap.send('a', captured[0]!);
  clock.advance(5);
  t.equal(got.a.length, 1, 'once: a copy is dropped by the replay window');
  // another key, a stale timestamp, an oversized datagram: dropped
  const other = new SealedTransport(net.transport('o'), randomBytes(64), memberId(9), () => clock.now());
  other.send('b', Buffer.from('forged'), memberId(2));
  const stale = new SealedTransport(net.transport('s'), key, memberId(8), () => clock.now() - 60_000);
  stale.send('b', Buffer.from('stale'), memberId(2));
  a.send('b', Buffer.alloc(9000), memberId(2));
  clock.advance(5);
  t.same(got.b, [Buffer.from('to b')], 'forged, stale and oversized datagrams are dropped');
  void b;
});

t.test('membership: an ack must name the probed member; one naming another does not answer the probe', async (t) => {
  for (const named of [memberId(9), memberId(2)]) {
    const clock = new SimClock(START);
    const net = new MemNetwork({ clock });
    const cfg = { probeInterval: 200, probeTimeout: 80, indirectChecks: 0 };
    const mk = (i: number) => new Membership({
      id: memberId(i), url: `circuit://10.0.0.${i}:1/1/Q${i}`, transport: net.transport(`m${i}`), clock, config: cfg, random: seededRandom(i),
    });
    const a = mk(1);
    const b = mk(2);
    const join = a.join('m2');
    t.ok(advanceUntil(clock, () => a.size === 2 && b.size === 2, 5000) >= 0);
    await settle();
    await join;
    // B stops; something at its address acks every ping, naming `named` as the target
    b.close();
    const fake = net.transport('m2');
    fake.onPacket((from, buf) => {
      const { header } = decodePacket(buf);
      if (header[0] === MsgType.Ping) fake.send(from, encodePacket([MsgType.Ack, header[1], named]));
    });
    const dead = advanceUntil(clock, () => a.member(memberId(2))?.state === 'dead', 15_000);
    if (named === memberId(2)) t.equal(dead, -1, 'control: acks naming B keep B alive (the acks do reach A)');
    else t.ok(dead >= 0, `acks naming another member do not: B is declared dead (${dead} ms)`);
    a.close();
  }
});

/** The sender, destination and body of a sealed membership datagram (the test holds the key). */
function unseal(buf: Buffer, now: number): { from: string; to: string; body: Buffer } | undefined {
  const p = openDatagram(key, buf, now, undefined, undefined, 'membership');
  if (!p) return undefined;
  const toAt = 1 + p[0]!;
  const bodyAt = toAt + 1 + p[toAt]!;
  return { from: p.toString('utf8', 1, toAt), to: p.toString('utf8', toAt + 1, bodyAt), body: p.subarray(bodyAt) };
}

/**
 * A and B run while an attacker records every datagram B sends to A (acks of A's probes, with
 * A's sequence numbers); C joins 10 s later, so its own sequence numbers run about 10 s behind
 * A's; 25 s later B dies (and A, so C judges B alone). From then on, whenever C pings B with sequence number s, the attacker at once
 * sends C a recorded ack of B's with that number (the headers are readable on the wire). With
 * `reseal` (the control), a key holder answers every such ping with an ack addressed to C.
 * Returns the ms until C declares B dead (-1: not within 20 s), and how many acks were sent.
 */
async function replayScenario(reseal: boolean): Promise<{ dead: number; sent: number; misaddressed: number }> {
  const clock = new SimClock(START);
  const net = new MemNetwork({ clock });
  const cfg = { probeInterval: 200, probeTimeout: 80 };
  const taps: Tap[] = [];
  const mk = (i: number) => {
    const tap = new Tap(net.transport(`m${i}`));
    taps[i] = tap;
    const transport = new SealedTransport(tap, key, memberId(i), () => clock.now());
    return { m: new Membership({ id: memberId(i), url: `circuit://10.0.0.${i}:1/1/Q${i}`, transport, clock, config: cfg, random: seededRandom(i) }), transport };
  };
  const a = mk(1);
  const b = mk(2);
  const jb = b.m.join('m1');
  advanceUntil(clock, () => a.m.size === 2, 5000);
  await settle();
  await jb;
  clock.advance(10_000);
  const c = mk(3);
  const jc = c.m.join('m1');
  advanceUntil(clock, () => c.m.size === 3, 5000);
  await settle();
  await jc;
  taps[2]!.sent.length = 0; // record the last 25 s: older datagrams are stale (30 s window)
  clock.advance(25_000);
  const recorded = new Map<number, Buffer>(); // A's sequence number → B's ack datagram
  for (const { to, buf } of taps[2]!.sent) {
    const u = to === 'm1' ? unseal(buf, clock.now()) : undefined;
    if (!u) continue;
    const { header } = decodePacket(u.body);
    if (header[0] === MsgType.Ack) recorded.set(header[1] as number, buf);
  }
  // B dies, and A with it, so that C's verdict on B is its own (A's would reach C by gossip)
  b.m.close();
  a.m.close();
  const attacker = net.transport('attacker');
  const forger = new SealedTransport({ addr: 'x', send: (to, buf) => attacker.send(to, buf), onPacket: () => undefined, close: () => undefined }, key, memberId(2), () => clock.now());
  let sent = 0;
  let seen = 0;
  const watch = () => {
    const out = taps[3]!.sent;
    for (; seen < out.length; seen++) {
      const { to, buf } = out[seen]!;
      const u = to === 'm2' ? unseal(buf, clock.now()) : undefined;
      if (!u) continue;
      const { header } = decodePacket(u.body);
      if (header[0] !== MsgType.Ping) continue;
      if (reseal) {
        sent++;
        forger.send('m3', encodePacket([MsgType.Ack, header[1], memberId(2)]), memberId(3));
        continue;
      }
      const ack = recorded.get(header[1] as number);
      if (!ack) continue;
      recorded.delete(header[1] as number); // a copy would be dropped by the replay window anyway
      sent++;
      attacker.send('m3', ack);
    }
  };
  const dead = advanceUntil(clock, () => {
    watch();
    return c.m.member(memberId(2))?.state === 'dead';
  }, 20_000, 5);
  for (const x of [a, c]) x.m.close();
  return { dead, sent, misaddressed: c.transport.misaddressed };
}

t.test('membership: a captured ack replayed to a third member does not keep a dead member alive', async (t) => {
  const replay = await replayScenario(false);
  t.ok(replay.sent > 3, `the attacker had a recorded ack for ${replay.sent} of C's pings to B`);
  t.ok(replay.dead >= 0, `C declares B dead anyway, ${replay.dead} ms after B died`);
  t.ok(replay.misaddressed >= replay.sent, `C dropped every replayed ack as addressed to another member (${replay.misaddressed})`);
  const control = await replayScenario(true);
  t.ok(control.sent > 3, `control: ${control.sent} acks addressed to C by a key holder`);
  t.equal(control.dead, -1, 'control: acks that C accepts do keep B alive there');
});
