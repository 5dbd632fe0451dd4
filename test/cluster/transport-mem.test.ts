import t from 'tap';
import { ManualClock } from '../../src/kit/clock';
import { MemNetwork, SimClock, seededRandom } from '../../src/cluster/transport-mem';

t.test('transport-mem: packets arrive after the latency, with the sender address', async (t) => {
  const clock = new ManualClock();
  const net = new MemNetwork({ clock, latency: 5 });
  const a = net.transport('a');
  const b = net.transport('b');
  const got: Array<[number, string, string]> = [];
  b.onPacket((from, buf) => got.push([clock.now(), from, buf.toString()]));
  a.send('b', Buffer.from('hi'));
  a.send('nowhere', Buffer.from('lost'));
  clock.advance(4);
  t.same(got, []);
  clock.advance(1);
  t.same(got, [[5, 'a', 'hi']]);
  t.same(net.stats('a'), { bytesSent: 6, packetsSent: 2, bytesReceived: 0, packetsReceived: 0 });
  t.same(net.stats('b'), { bytesSent: 0, packetsSent: 0, bytesReceived: 2, packetsReceived: 1 });
  net.resetStats();
  t.equal(net.stats('a').bytesSent, 0);
  t.throws(() => net.transport('a'), /in use/);
  a.close();
  t.doesNotThrow(() => net.transport('a'), 'a closed address can be reused');
});

t.test('transport-mem: loss is seeded, so runs repeat exactly', async (t) => {
  const run = () => {
    const clock = new ManualClock();
    const net = new MemNetwork({ clock, loss: 0.3, seed: 99 });
    const a = net.transport('a');
    const b = net.transport('b');
    const got: number[] = [];
    b.onPacket((_f, buf) => got.push(buf[0]!));
    for (let i = 0; i < 200; i++) a.send('b', Buffer.from([i]));
    clock.advance(10);
    return got;
  };
  const x = run();
  t.same(run(), x);
  t.ok(x.length > 110 && x.length < 170, `about 70% arrive (${x.length})`);
});

t.test('transport-mem: partition cuts both ways between groups; heal restores', async (t) => {
  const clock = new ManualClock();
  const net = new MemNetwork({ clock });
  const eps = ['a', 'b', 'c', 'd'].map((n) => net.transport(n));
  const got: string[] = [];
  for (const e of eps) e.onPacket((from) => got.push(`${from}>${e.addr}`));
  net.partition(['a', 'b'], ['c']);
  const all = () => {
    for (const x of eps) for (const y of eps) if (x !== y) x.send(y.addr, Buffer.from('.'));
    clock.advance(2);
  };
  all();
  t.notOk(got.some((g) => /^[ab]>c$|^c>[ab]$/.test(g)), 'no packet crosses the cut');
  t.ok(got.includes('a>b') && got.includes('a>d') && got.includes('c>d'), 'other paths work');
  got.length = 0;
  net.heal();
  all();
  t.equal(got.length, 12);
});

t.test('transport-mem: jitter reorders but delivers everything', async (t) => {
  const clock = new ManualClock();
  const net = new MemNetwork({ clock, latency: 1, jitter: 20, seed: 3 });
  const a = net.transport('a');
  const b = net.transport('b');
  const got: number[] = [];
  b.onPacket((_f, buf) => got.push(buf[0]!));
  for (let i = 0; i < 50; i++) a.send('b', Buffer.from([i]));
  clock.advance(25);
  t.equal(got.length, 50);
  t.notSame(got, [...got].sort((x, y) => x - y), 'some reordering');
});

t.test('transport-mem: SimClock fires like ManualClock, in time then creation order', async (t) => {
  const trace = (clock: { setTimeout(fn: () => void, ms: number): unknown; clearTimeout(h: never): void; advance(ms: number): void; now(): number }) => {
    const out: string[] = [];
    const rnd = seededRandom(5);
    const hs: unknown[] = [];
    for (let i = 0; i < 200; i++) {
      const at = Math.floor(rnd() * 100);
      hs.push(clock.setTimeout(() => {
        out.push(`${i}@${clock.now()}`);
        if (i % 7 === 0) clock.setTimeout(() => out.push(`${i}+@${clock.now()}`), 3);
      }, at));
    }
    for (let i = 0; i < 200; i += 5) clock.clearTimeout(hs[i] as never);
    clock.advance(50);
    clock.advance(100);
    return out;
  };
  t.same(trace(new SimClock()), trace(new ManualClock()));
  const c = new SimClock();
  c.setTimeout(() => {}, 10);
  t.equal(c.pending(), 1);
  c.advance(10);
  t.equal(c.pending(), 0);
  t.equal(c.now(), 10);
});
