import t from 'tap';
import { backoffDelay } from '../../src/kit/backoff';
import { defaultConfig, retransmitLimit, syncPeriod, testConfig } from '../../src/cluster/membership-config';

t.test('membership config: retransmit limit grows with log10 of the cluster size', async (t) => {
  const table: Array<[number, number, number]> = [
    [4, 1, 4], [4, 9, 4], [4, 10, 8], [4, 99, 8], [4, 100, 12], [4, 1000, 16], [3, 1000, 12],
  ];
  for (const [mult, n, want] of table) t.equal(retransmitLimit(mult, n), want, `mult ${mult} n ${n}`);
});

t.test('membership config: the sync period grows linearly past syncScaleMembers', async (t) => {
  const cfg = { fullSyncInterval: 30_000, syncScaleMembers: 32 };
  t.equal(syncPeriod(cfg, 1), 30_000);
  t.equal(syncPeriod(cfg, 32), 30_000);
  t.equal(syncPeriod(cfg, 64), 60_000);
  t.equal(syncPeriod(cfg, 1000), 937_500);
});

t.test('membership config: presets are complete and the test preset is faster', async (t) => {
  t.same(Object.keys(testConfig).sort(), Object.keys(defaultConfig).sort());
  t.ok(testConfig.probeInterval < defaultConfig.probeInterval);
  t.ok(defaultConfig.probeTimeout < defaultConfig.probeInterval, 'indirect probes fit in the interval');
  t.ok(defaultConfig.packetSize <= 1400);
});

t.test('backoff: exponential, capped, jitter spread around the base', async (t) => {
  const p = { initial: 100, factor: 2, max: 1000 };
  const table: Array<[number, number]> = [[0, 100], [1, 200], [2, 400], [3, 800], [4, 1000], [10, 1000], [-1, 100]];
  for (const [attempt, want] of table) t.equal(backoffDelay(attempt, p), want, `attempt ${attempt}`);
  const j = { ...p, spread: 0.5 };
  t.equal(backoffDelay(1, j, 0), 150, 'lowest jitter');
  t.equal(backoffDelay(1, j, 0.5), 200, 'middle');
  t.equal(backoffDelay(1, j, 0.999999), 250, 'highest');
});
