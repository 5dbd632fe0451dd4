import t from 'tap';
import { Membership } from '../../src/cluster/membership';
import { defaultConfig } from '../../src/cluster/membership-config';
import { splitHostPort, UdpTransport } from '../../src/cluster/transport-udp';
import { seededRandom } from '../../src/cluster/transport-mem';
import { memberId } from './membership-helpers';

/** Polls pred every 20 ms for up to ms (real time). */
async function eventually(pred: () => boolean, ms: number): Promise<number> {
  const start = Date.now();
  while (!pred()) {
    if (Date.now() - start > ms) return -1;
    await new Promise((r) => setTimeout(r, 20));
  }
  return Date.now() - start;
}

t.test('transport-udp: addresses parse; datagrams go both ways on loopback', async (t) => {
  t.same(splitHostPort('127.0.0.1:7946'), { host: '127.0.0.1', port: 7946 });
  t.same(splitHostPort('[::1]:9'), { host: '::1', port: 9 });
  t.throws(() => splitHostPort('nonsense'), { code: 'EINVAL' });
  const a = await UdpTransport.bind('127.0.0.1:0');
  const b = await UdpTransport.bind('127.0.0.1:0');
  t.teardown(() => {
    a.close();
    b.close();
  });
  t.match(a.addr, /^127\.0\.0\.1:\d+$/);
  t.not(a.addr, '127.0.0.1:0', 'the real port is reported');
  const got: Array<[string, string]> = [];
  b.onPacket((from, buf) => got.push([from, buf.toString()]));
  a.onPacket((from, buf) => b.send(from, Buffer.from(`echo ${buf}`)));
  a.send(b.addr, Buffer.from('hello'));
  b.send(a.addr, Buffer.from('ping'));
  t.ok((await eventually(() => got.length >= 2, 2_000)) >= 0);
  t.same(got.map((g) => g[1]).sort(), ['echo ping', 'hello']);
  t.equal(got[0]![0], a.addr, 'the sender address is the bound one');
  a.send('not an address', Buffer.from('x'));
  t.equal(a.sendErrors, 1, 'bad addresses are counted, not thrown');
  a.close();
  a.close();
  a.send(b.addr, Buffer.from('after close')); // ignored
});

t.test('transport-udp: four members on 127.0.0.1 join, detect a kill, see a leave', async (t) => {
  const cfg = defaultConfig; // the LAN preset, to report its real detection time
  const ms: Membership[] = [];
  for (let i = 0; i < 4; i++) {
    const tr = await UdpTransport.bind('127.0.0.1:0');
    ms.push(new Membership({ id: memberId(0x100 + i), url: `circuit://127.0.0.1:1/1/Q${i}`, transport: tr, config: cfg, random: seededRandom(i + 1) }));
  }
  t.teardown(() => {
    for (const m of ms) m.close();
  });
  const events: string[] = [];
  ms[0]!.on('join', (m) => events.push(`join ${m.id}`));
  ms[0]!.on('leave', (m) => events.push(`leave ${m.id} ${m.state}`));
  await ms[1]!.join(ms[0]!.addr);
  await ms[2]!.join(ms[1]!.addr);
  await ms[3]!.join(ms[0]!.addr);
  const converged = await eventually(() => ms.every((m) => m.size === 4), 5_000);
  t.ok(converged >= 0, `all four see each other (${converged} ms)`);
  t.equal(ms[2]!.member(ms[3]!.id)?.addr, ms[3]!.addr);

  ms[3]!.close(); // killed
  const dead = await eventually(() => [0, 1, 2].every((i) => ms[i]!.member(ms[3]!.id)?.state === 'dead'), 10_000);
  t.ok(dead >= 0 && dead <= 3_000, `the killed member is declared dead by the other three after ${dead} ms`);
  t.comment(`real UDP, defaultConfig: dead for all after ${dead} ms`);

  await ms[2]!.leave();
  const left = await eventually(() => [0, 1].every((i) => ms[i]!.member(ms[2]!.id)?.state === 'left'), 5_000);
  t.ok(left >= 0, `the leaving member is seen as left (${left} ms)`);
  t.same(events.filter((e) => e.startsWith('leave')).sort(), [`leave ${ms[2]!.id} left`, `leave ${ms[3]!.id} dead`].sort());
  t.equal(ms[0]!.size, 2);
});
