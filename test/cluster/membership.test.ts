import t from 'tap';
import { ManualClock } from '../../src/kit/clock';
import { CircuitError } from '../../src/kit/errors';
import { defaultConfig, testConfig } from '../../src/cluster/membership-config';
import { encodePacket, encodeRecord, MsgType, RecordKind } from '../../src/cluster/membership-wire';
import { SimClock, seededRandom } from '../../src/cluster/transport-mem';
import { advanceUntil, makeSim, memberId, settle, viewsAre, type SimMember } from './membership-helpers';

const ids = (ms: SimMember[]) => new Set(ms.map((s) => s.m.id));

async function joinAll(clock: { advance(ms: number): void }, ms: SimMember[]): Promise<void> {
  for (let i = 1; i < ms.length; i++) {
    const p = ms[i]!.m.join(ms[i - 1]!.addr);
    clock.advance(20);
    await settle();
    await p;
  }
}

t.test('membership: members join, see each other, and report join events', async (t) => {
  const clock = new ManualClock();
  const sim = makeSim(clock, 3, testConfig, { record: true });
  const [a, b, c] = sim.members as [SimMember, SimMember, SimMember];
  t.same(a.m.members().map((m) => m.id), [a.m.id], 'alone, a member sees itself');
  await joinAll(clock, sim.members);
  t.ok(advanceUntil(clock, () => viewsAre(sim.members, ids(sim.members)), 5_000) >= 0, 'all views complete');
  const seen = a.m.member(c.m.id)!;
  t.equal(seen.url, c.m.url, 'the url travels');
  t.equal(seen.addr, c.addr);
  t.equal(seen.state, 'alive');
  t.same(a.events.filter((e) => e.event === 'join').map((e) => e.member.id).sort(), [b.m.id, c.m.id]);
  t.same(c.events.filter((e) => e.event === 'join').map((e) => e.member.id).sort(), [a.m.id, b.m.id]);
  t.equal(b.m.size, 3);
  for (const s of sim.members) s.m.close();
  clock.advance(100);
  t.equal(clock.pending(), 0, 'close() leaves no timer behind');
});

t.test('membership: a killed member is declared dead by all (LAN config)', async (t) => {
  const clock = new ManualClock();
  const sim = makeSim(clock, 10, defaultConfig, { record: true });
  await joinAll(clock, sim.members);
  t.ok(advanceUntil(clock, () => viewsAre(sim.members, ids(sim.members)), 10_000) >= 0, 'converged');
  clock.advance(3_000);
  const victim = sim.members[4]!;
  victim.m.close(); // kill -9: no goodbye
  const others = sim.members.filter((s) => s !== victim);
  const killed = clock.now();
  let first = -1;
  const all = advanceUntil(clock, () => {
    const n = others.filter((s) => s.m.member(victim.m.id)?.state === 'dead').length;
    if (n > 0 && first < 0) first = clock.now() - killed;
    return n === others.length;
  }, 10_000, 10);
  t.comment(`10 members, defaultConfig: declared dead by the first after ${first} ms, by all after ${all} ms`);
  t.ok(all > 0 && all <= 2_500, `dead for all within 2.5 s (${all} ms)`);
  for (const s of others) {
    const leaves = s.events.filter((e) => e.event === 'leave');
    t.same(leaves.map((e) => [e.member.id, e.member.state]), [[victim.m.id, 'dead']], `one leave event at ${s.m.id}`);
  }
  t.equal(others[0]!.m.size, 9);
  t.notOk(others[0]!.m.members().some((m) => m.id === victim.m.id), 'members() lists only live ones');
  for (const s of others) s.m.close();
});

t.test('membership: a suspected member refutes with a higher incarnation', async (t) => {
  const clock = new ManualClock();
  const sim = makeSim(clock, 5, testConfig, { record: true });
  await joinAll(clock, sim.members);
  t.ok(advanceUntil(clock, () => viewsAre(sim.members, ids(sim.members)), 5_000) >= 0);
  clock.advance(2_000);
  const target = sim.members[2]!;
  t.equal(target.m.incarnation, 0);
  // A rumour that target is suspect (incarnation 0) arrives at member 0 from outside.
  const liar = sim.net.transport('liar');
  liar.send(sim.members[0]!.addr, encodePacket([MsgType.Gossip, 'Xffffffffffffffff'], [
    encodeRecord({ kind: RecordKind.Suspect, id: target.m.id, inc: 0, from: 'Xffffffffffffffff' }),
  ]));
  clock.advance(1);
  t.equal(sim.members[0]!.m.member(target.m.id)!.state, 'suspect', 'member 0 believes it');
  const took = advanceUntil(clock, () => sim.members.every((s) => s.m.member(target.m.id)?.state === 'alive' && s.m.member(target.m.id)?.incarnation === 1), 2_000, 5);
  t.ok(took >= 0, `everyone sees the refutation (incarnation 1) after ${took} ms`);
  t.equal(target.m.incarnation, 1);
  t.notOk(sim.members.some((s) => s.events.some((e) => e.event === 'leave')), 'nobody was declared dead');
  // Older news cannot undo it: suspect at incarnation 0 is now stale.
  liar.send(sim.members[0]!.addr, encodePacket([MsgType.Gossip, 'Xffffffffffffffff'], [
    encodeRecord({ kind: RecordKind.Dead, id: target.m.id, inc: 0, from: 'Xffffffffffffffff' }),
  ]));
  clock.advance(5);
  t.equal(sim.members[0]!.m.member(target.m.id)!.state, 'alive', 'stale dead news is ignored');
  // Dead news about itself at the current incarnation makes a member refute again.
  liar.send(target.addr, encodePacket([MsgType.Gossip, 'Xffffffffffffffff'], [
    encodeRecord({ kind: RecordKind.Dead, id: target.m.id, inc: 1, from: 'Xffffffffffffffff' }),
  ]));
  clock.advance(5);
  t.equal(target.m.incarnation, 2);
  for (const s of sim.members) s.m.close();
});

t.test('membership: leave() is seen as left by all, with leave events', async (t) => {
  const clock = new ManualClock();
  const sim = makeSim(clock, 6, testConfig, { record: true });
  await joinAll(clock, sim.members);
  t.ok(advanceUntil(clock, () => viewsAre(sim.members, ids(sim.members)), 5_000) >= 0);
  const leaver = sim.members[3]!;
  const p = leaver.m.leave();
  const others = sim.members.filter((s) => s !== leaver);
  const took = advanceUntil(clock, () => others.every((s) => s.m.member(leaver.m.id)?.state === 'left'), 3_000, 5);
  t.ok(took >= 0, `all see it left after ${took} ms`);
  clock.advance(testConfig.leaveTimeout);
  await p;
  for (const s of others) t.same(s.events.filter((e) => e.event === 'leave').map((e) => e.member.state), ['left']);
  clock.advance(5_000);
  t.notOk(others.some((s) => s.m.member(leaver.m.id)?.state === 'dead'), 'it stays left, not dead');
  for (const s of others) s.m.close();
});

t.test('membership: join retries with backoff until the target comes up', async (t) => {
  const clock = new ManualClock();
  const sim = makeSim(clock, 1, testConfig);
  const a = sim.members[0]!;
  const target = '10.0.0.9:7946';
  let done: string | undefined;
  a.m.join(target, { retry: true }).then(() => (done = 'joined'), (e: Error) => (done = e.message));
  for (let i = 0; i < 60; i++) {
    clock.advance(100);
    await settle();
  }
  const failures = sim.logs.filter((l) => l.includes(`join ${target}: attempt`));
  t.ok(failures.length >= 3, `each failed attempt is logged (${failures.length})`);
  t.match(failures[0]!, /attempt 1 failed/);
  t.equal(done, undefined, 'still trying');
  const b = sim.add(9);
  t.equal(b.addr, target);
  t.ok(advanceUntil(clock, () => done !== undefined, 5_000) >= 0 || true);
  for (let i = 0; i < 50 && done === undefined; i++) {
    clock.advance(100);
    await settle();
  }
  t.equal(done, 'joined');
  t.ok(advanceUntil(clock, () => a.m.size === 2 && b.m.size === 2, 2_000) >= 0, 'both see each other');
  a.m.close();
  b.m.close();
});

t.test('membership: join fails with EHOSTDOWN after its attempts, ETIMEDOUT with a timeout', async (t) => {
  const clock = new ManualClock();
  const sim = makeSim(clock, 1, testConfig);
  const a = sim.members[0]!;
  const errs: CircuitError[] = [];
  a.m.join('10.9.9.9:1').catch((e: CircuitError) => errs.push(e));
  a.m.join('10.9.9.9:2', { retry: true, timeout: 3_000 }).catch((e: CircuitError) => errs.push(e));
  for (let i = 0; i < 100 && errs.length < 2; i++) {
    clock.advance(100);
    await settle();
  }
  t.equal(errs.length, 2);
  const down = errs.find((e) => e.code === 'EHOSTDOWN');
  const late = errs.find((e) => e.code === 'ETIMEDOUT');
  t.match(down?.message, /no answer after 3 attempts/);
  t.ok(late && late.system, 'a timeout is a system error');
  t.equal(sim.logs.filter((l) => l.includes('10.9.9.9:1: attempt')).length, 3);
  const closedJoin = a.m.join('10.9.9.9:3', { retry: true });
  a.m.close();
  await t.rejects(closedJoin, { code: 'ECANCELED' });
});

t.test('membership: a paused member is declared dead, then rejoins with a join event', async (t) => {
  const clock = new ManualClock();
  const sim = makeSim(clock, 6, defaultConfig, { record: true });
  await joinAll(clock, sim.members);
  t.ok(advanceUntil(clock, () => viewsAre(sim.members, ids(sim.members)), 10_000) >= 0);
  clock.advance(3_000);
  const p = sim.members[5]!;
  const others = sim.members.filter((s) => s !== p);
  // SIGSTOP: its timers stop and nothing reaches it or leaves it
  p.clock.pause();
  sim.net.partition([p.addr], others.map((s) => s.addr));
  const stopped = clock.now();
  const deadAfter = advanceUntil(clock, () => others.every((s) => s.m.member(p.m.id)?.state === 'dead'), 10_000, 10);
  t.ok(deadAfter > 0 && deadAfter < 3_000, `declared dead by all after ${deadAfter} ms`);
  clock.advance(8_000 - (clock.now() - stopped)); // paused for 8 s in all
  // SIGCONT
  sim.net.heal();
  p.clock.resume();
  const back = advanceUntil(clock, () => others.every((s) => s.m.member(p.m.id)?.state === 'alive') && p.m.size === 6, 10_000, 10);
  t.ok(back >= 0, `back in every view ${back} ms after resuming`);
  t.ok(p.m.incarnation >= 1, `it refuted its death (incarnation ${p.m.incarnation})`);
  for (const s of others) {
    const evs = s.events.filter((e) => e.member.id === p.m.id && e.event !== 'update').map((e) => e.event);
    t.same(evs, ['join', 'leave', 'join'], `join, leave, join at ${s.m.id}`);
  }
  t.notOk(others.some((s) => s.events.some((e) => e.event === 'leave' && e.member.id !== p.m.id)), 'nobody else left');
  for (const s of sim.members) s.m.close();
});

t.test('membership: a partition is seen by both sides and heals back to one view', async (t) => {
  const clock = new SimClock();
  const sim = makeSim(clock, 10, testConfig, { record: true });
  await joinAll(clock, sim.members);
  t.ok(advanceUntil(clock, () => viewsAre(sim.members, ids(sim.members)), 10_000) >= 0);
  clock.advance(5_000);
  const left = sim.members.slice(0, 5);
  const right = sim.members.slice(5);
  sim.net.partition(left.map((s) => s.addr), right.map((s) => s.addr));
  const split = advanceUntil(clock, () => viewsAre(left, ids(left)) && viewsAre(right, ids(right)), 20_000, 10);
  t.ok(split > 0, `each side sees only itself after ${split} ms`);
  clock.advance(20_000);
  t.ok(viewsAre(left, ids(left)) && viewsAre(right, ids(right)), 'the split is stable');
  sim.net.heal();
  const healed = advanceUntil(clock, () => viewsAre(sim.members, ids(sim.members)), 60_000, 50);
  t.ok(healed >= 0, `one view again ${healed} ms after healing`);
  clock.advance(10_000);
  t.ok(viewsAre(sim.members, ids(sim.members)), 'and it stays whole');
  for (const s of left) {
    const joins = s.events.filter((e) => e.event === 'join' && right.some((r) => r.m.id === e.member.id));
    t.equal(joins.length, 10, `${s.m.id}: each of the other side joined twice (first join, after healing)`);
  }
  for (const s of sim.members) s.m.close();
});

t.test('membership: with 5% packet loss no live member is declared dead over 10 minutes', async (t) => {
  const clock = new SimClock();
  const n = 40;
  const sim = makeSim(clock, n, defaultConfig, { record: true, loss: 0.05, jitter: 2, seed: 11 });
  for (let i = 1; i < n; i++) {
    sim.members[i]!.m.join(sim.members[0]!.addr, { retry: true }).catch(() => {});
    clock.advance(50);
  }
  t.ok(advanceUntil(clock, () => viewsAre(sim.members, ids(sim.members)), 30_000) >= 0, 'converged despite loss');
  for (const s of sim.members) s.events.length = 0;
  clock.advance(600_000);
  const leaves = sim.members.flatMap((s) => s.events.filter((e) => e.event === 'leave').map((e) => ({ at: s.m.id, ...e })));
  for (const l of leaves.slice(0, 5)) t.comment(JSON.stringify(l));
  const suspicions = sim.members.flatMap((s) => s.events.filter((e) => e.event === 'update' && e.member.state === 'suspect'));
  const refuted = sim.members.filter((s) => s.m.incarnation > 0).length;
  t.comment(`${n} members, 5% loss, 10 min: ${suspicions.length} suspicions seen, ${refuted} members refuted at least once, ${leaves.length} declared dead`);
  t.equal(leaves.length, 0, 'no live member declared dead');
  t.ok(viewsAre(sim.members, ids(sim.members)));
  for (const s of sim.members) s.m.close();
});

t.test('membership: malformed packets and pings for another id are ignored', async (t) => {
  const clock = new ManualClock();
  const sim = makeSim(clock, 2, testConfig);
  const [a, b] = sim.members as [SimMember, SimMember];
  const x = sim.net.transport('x');
  const got: Buffer[] = [];
  x.onPacket((_f, buf) => got.push(buf));
  x.send(a.addr, Buffer.from([0xc1, 0xff, 0x00]));
  x.send(a.addr, Buffer.from('not msgpack at all'));
  x.send(a.addr, encodePacket([MsgType.Ping, 1, memberId(77), 'Xffffffffffffffff']));
  x.send(a.addr, encodePacket([MsgType.Ping, 2, a.m.id, 'Xffffffffffffffff']));
  x.send(a.addr, encodePacket([99, 'from the future']));
  clock.advance(10);
  t.equal(got.length, 2, 'one ack, plus one question to the unknown sender');
  t.equal(a.m.size, 1);
  void b;
  for (const s of sim.members) s.m.close();
});

t.test('membership: after a minute of churn (kills, leaves, joins) the live views agree', async (t) => {
  const clock = new SimClock();
  const sim = makeSim(clock, 60, defaultConfig, { seed: 21, loss: 0.01, jitter: 3 });
  for (let i = 1; i < 60; i++) {
    sim.members[i]!.m.join(sim.members[i - 1]!.addr, { retry: true }).catch(() => {});
    clock.advance(20);
  }
  let live = sim.members.slice();
  t.ok(advanceUntil(clock, () => viewsAre(live, ids(live)), 20_000) >= 0, 'converged');
  const rnd = seededRandom(21);
  let next = 60;
  const counts = { kill: 0, leave: 0, join: 0 };
  for (let step = 0; step < 60; step++) {
    const r = rnd();
    if (r < 0.3 && live.length > 10) {
      const v = live[Math.floor(rnd() * live.length)]!;
      v.m.close();
      live = live.filter((s) => s !== v);
      counts.kill++;
    } else if (r < 0.5 && live.length > 10) {
      const v = live[Math.floor(rnd() * live.length)]!;
      void v.m.leave();
      live = live.filter((s) => s !== v);
      counts.leave++;
    } else {
      const s = sim.add(next++);
      s.m.join(live[Math.floor(rnd() * live.length)]!.addr, { retry: true }).catch(() => {});
      live.push(s);
      counts.join++;
    }
    clock.advance(1_000);
  }
  const took = advanceUntil(clock, () => viewsAre(live, ids(live)), 30_000, 50);
  t.comment(`churn ${JSON.stringify(counts)}; ${live.length} live members agree ${took} ms after it stopped`);
  t.ok(took >= 0, 'every live member sees exactly the live members');
  for (const s of live) s.m.close();
});

t.test('membership: joining itself or a member already in view is cheap', async (t) => {
  const clock = new ManualClock();
  const sim = makeSim(clock, 3, testConfig);
  await joinAll(clock, sim.members);
  t.ok(advanceUntil(clock, () => viewsAre(sim.members, ids(sim.members)), 5_000) >= 0);
  clock.advance(3_000);
  const [a, b] = sim.members as [SimMember, SimMember];
  await a.m.join(a.addr); // discovery can make a server join itself
  const before = sim.net.stats(b.addr).bytesSent;
  const p = a.m.join(b.addr);
  clock.advance(10);
  await settle();
  await p;
  const answer = sim.net.stats(b.addr).bytesSent - before;
  t.ok(answer < 100, `a repeated join costs a digest check (${answer} bytes answered)`);
  for (const s of sim.members) s.m.close();
});
