/**
 * One staggered-join convergence run (issue 12): n members over the simulated network with the
 * LAN config, each joining a random earlier member 20 ms apart; returns how long after the last
 * join every view was complete (-1: not within maxMs). Run in a worker thread by
 * membership-scale.test.ts (two seeds at a time), or alone:
 *   node dist/test/cluster/membership-converge.js SEED [N]
 */
import { isMainThread, parentPort, workerData } from 'node:worker_threads';
import { defaultConfig } from '../../src/cluster/membership-config';
import { SimClock, seededRandom } from '../../src/cluster/transport-mem';
import { advanceUntil, makeSim } from './membership-helpers';

export interface ConvergeResult {
  seed: number;
  n: number;
  /** ms after the last join until every view was complete; -1 if not within maxMs */
  convergedMs: number;
  largestPacket: number;
  wallMs: number;
}

export function convergeAfterJoins(seed: number, n = 1000, maxMs = 120_000): ConvergeResult {
  const wall = Date.now();
  const clock = new SimClock();
  const sim = makeSim(clock, n, defaultConfig, { seed });
  const rnd = seededRandom(seed);
  for (let i = 1; i < n; i++) {
    sim.members[i]!.m.join(sim.members[Math.floor(rnd() * i)]!.addr, { retry: true }).catch(() => {});
    clock.advance(20);
  }
  const convergedMs = advanceUntil(clock, () => sim.members.every((s) => s.m.size === n), maxMs, 100);
  for (const s of sim.members) s.m.close();
  return { seed, n, convergedMs, largestPacket: sim.net.largestPacket, wallMs: Date.now() - wall };
}

if (!isMainThread && parentPort && workerData?.convergeSeed !== undefined) {
  parentPort.postMessage(convergeAfterJoins(workerData.convergeSeed as number, workerData.n as number | undefined));
} else if (isMainThread && require.main === module) {
  const [seed, n] = process.argv.slice(2).map(Number);
  console.log(JSON.stringify(convergeAfterJoins(seed ?? 1, n || 1000)));
}
