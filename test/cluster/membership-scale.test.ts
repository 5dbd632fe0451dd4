import t from 'tap';
import { defaultConfig } from '../../src/cluster/membership-config';
import { SimClock, seededRandom } from '../../src/cluster/transport-mem';
import { advanceUntil, makeSim } from './membership-helpers';

// 1 000 members over the simulated network with the LAN config; SimClock, since ManualClock
// scans every timer at each step. Simulated times are reported as comments.
t.test('membership: 1 000 members converge after joins, and all detect a failure', async (t) => {
  const wall = Date.now();
  const clock = new SimClock();
  const n = 1000;
  const sim = makeSim(clock, n, defaultConfig, { seed: 3 });
  const rnd = seededRandom(3);
  for (let i = 1; i < n; i++) {
    // each joins a random member that joined before it, 20 ms apart
    sim.members[i]!.m.join(sim.members[Math.floor(rnd() * i)]!.addr, { retry: true }).catch(() => {});
    clock.advance(20);
  }
  const converged = advanceUntil(clock, () => sim.members.every((s) => s.m.size === n), 120_000, 100);
  t.comment(`${n} members: every view complete ${converged} ms after the last join (${(clock.now() / 1000).toFixed(1)} s simulated in all)`);
  t.ok(converged >= 0, 'all views complete');
  t.ok(converged <= 30_000, 'within 30 s of the last join');
  const drained = advanceUntil(clock, () => sim.members.every((s) => s.m.pendingBroadcasts === 0), 120_000, 500);
  t.comment(`broadcast queues empty ${drained} ms later`);
  t.ok(sim.net.largestPacket <= defaultConfig.packetSize, `no datagram over ${defaultConfig.packetSize} bytes (largest ${sim.net.largestPacket})`);

  const victim = sim.members[500]!;
  victim.m.close();
  const others = sim.members.filter((s) => s !== victim);
  const killed = clock.now();
  let first = -1;
  const all = advanceUntil(clock, () => {
    let dead = 0;
    for (const s of others) if (s.m.member(victim.m.id)?.state === 'dead') dead++;
    if (dead > 0 && first < 0) first = clock.now() - killed;
    return dead === others.length;
  }, 30_000, 20);
  t.comment(`killed member declared dead by the first after ${first} ms, by all after ${all} ms`);
  t.ok(all > 0 && all <= 5_000, 'all detect it within 5 s');
  t.ok(others.every((s) => s.m.size === n - 1));
  t.comment(`wall time ${((Date.now() - wall) / 1000).toFixed(1)} s`);
  for (const s of sim.members) s.m.close();
});
