import t from 'tap';
import { randomBytes } from 'node:crypto';
import { sealDatagram, openDatagram, ReplayWindow, DEFAULT_MAX_SKEW_MS } from '../../src/cluster/discovery-mac';

const key = randomBytes(64);
const other = randomBytes(64);
const payload = Buffer.from(JSON.stringify({ Origin: 'server', Addr: 'circuit://10.0.0.1:8888/1/Q0123456789abcdef' }));
const now = 1_700_000_000_000;

t.test('discovery-mac: a keyed datagram opens under the same key', async (t) => {
  const d = sealDatagram(key, payload, now);
  t.same(openDatagram(key, d, now), payload);
  t.same(openDatagram(key, d, now + DEFAULT_MAX_SKEW_MS), payload, 'at the edge of the window');
  t.same(openDatagram(key, sealDatagram(key, Buffer.alloc(0), now), now), Buffer.alloc(0), 'empty payload');
});

t.test('discovery-mac: forged datagrams are dropped', async (t) => {
  const d = sealDatagram(key, payload, now);
  t.equal(openDatagram(other, d, now), null, 'another key');
  t.equal(openDatagram(key, sealDatagram(other, payload, now), now), null, 'sealed under another key');
  for (let i = 0; i < d.length; i++) {
    const bad = Buffer.from(d);
    bad[i] ^= 0x01;
    if (openDatagram(key, bad, now) !== null) t.fail(`bit flip at byte ${i} accepted`);
  }
  t.equal(openDatagram(key, d.subarray(0, d.length - 1), now), null, 'truncated');
  t.equal(openDatagram(key, Buffer.concat([d, Buffer.from([0])]), now), null, 'extended');
  t.equal(openDatagram(key, sealDatagram(null, payload, now), now), null, 'plain datagram to a keyed receiver');
  t.equal(openDatagram(null, d, now), null, 'keyed datagram to a keyless receiver');
});

t.test('discovery-mac: stale and future datagrams are dropped', async (t) => {
  const d = sealDatagram(key, payload, now);
  t.equal(openDatagram(key, d, now + DEFAULT_MAX_SKEW_MS + 1), null, 'stale');
  t.equal(openDatagram(key, d, now - DEFAULT_MAX_SKEW_MS - 1), null, 'from the future');
  t.equal(openDatagram(key, d, now + 5001, 5000), null, 'a tighter window');
  t.equal(openDatagram(key, d, Number.NaN), null, 'a broken clock accepts nothing');
});

t.test('discovery-mac: a replay inside the window is dropped; fresh datagrams are not', async (t) => {
  const seen = new ReplayWindow();
  const d = sealDatagram(key, payload, now);
  t.same(openDatagram(key, d, now, DEFAULT_MAX_SKEW_MS, seen), payload);
  t.equal(openDatagram(key, d, now + 1000, DEFAULT_MAX_SKEW_MS, seen), null, 'replayed copy');
  t.same(openDatagram(key, sealDatagram(key, payload, now), now + 1000, DEFAULT_MAX_SKEW_MS, seen), payload, 'same payload, new id');
  t.equal(openDatagram(key, d, now + DEFAULT_MAX_SKEW_MS + 1, DEFAULT_MAX_SKEW_MS, seen), null, 'copy after the window is stale');
  const forged = Buffer.from(sealDatagram(key, payload, now));
  forged[forged.length - 1] ^= 1;
  const before = seen.size;
  openDatagram(key, forged, now, DEFAULT_MAX_SKEW_MS, seen);
  t.equal(seen.size, before, 'a forged datagram does not take a place in the window');
});

t.test('discovery-mac: the replay window forgets expired ids and stays bounded', async (t) => {
  const w = new ReplayWindow(10);
  for (let i = 0; i < 25; i++) t.ok(w.admit(`id${i}`, now + 100, now));
  t.equal(w.size, 10);
  t.notOk(w.admit('id24', now + 100, now));
  t.ok(w.admit('id24', now + 300, now + 101), 'expired entries are forgotten');
  t.equal(w.size, 1);
});

t.test('discovery-mac: without a key, a plain format that is still validated', async (t) => {
  const d = sealDatagram(null, payload, now);
  t.same(openDatagram(null, d, now), payload);
  t.equal(openDatagram(null, d, now + DEFAULT_MAX_SKEW_MS + 1), null, 'stale');
  const wrongMagic = Buffer.from(d);
  wrongMagic[0] ^= 0xff;
  t.equal(openDatagram(null, wrongMagic, now), null, 'not ours');
  const seen = new ReplayWindow();
  t.same(openDatagram(null, d, now, DEFAULT_MAX_SKEW_MS, seen), payload);
  t.equal(openDatagram(null, d, now, DEFAULT_MAX_SKEW_MS, seen), null, 'duplicate');
  t.equal(openDatagram(null, Buffer.from('{"Key":1,"Payload":"e30="}'), now), null, 'the original JSON format');
});

t.test('discovery-mac: malformed input never throws', async (t) => {
  const seen = new ReplayWindow();
  let accepted = 0;
  for (let i = 0; i < 5000; i++) {
    const buf = randomBytes(Math.floor(Math.random() * 120));
    if (i % 3 === 0 && buf.length >= 6) buf.write('CRKD\x01', 0, 'latin1');
    for (const k of [key, null]) if (openDatagram(k, buf, now, DEFAULT_MAX_SKEW_MS, seen) !== null) accepted++;
  }
  // a random plain datagram needs the magic, version, mode and a timestamp within a minute: never.
  t.equal(accepted, 0);
  t.equal(openDatagram(key, Buffer.alloc(0), now), null);
});
