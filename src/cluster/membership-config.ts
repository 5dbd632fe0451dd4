/**
 * Every interval and multiplier of the SWIM membership in one object, with two presets.
 *
 * `defaultConfig` is tuned for a LAN: a member that is `kill -9`'d is declared dead by the
 * others in about 1–2 s in a cluster of a few to a few dozen members (the original needed 4–6 s;
 * docs/membership.md). The budget, for n ≤ 10 members:
 *   - someone probes the dead member within ~1 probe interval (round-robin, random order),
 *   - the probe fails after one full interval (probeTimeout for the direct ping, the rest of the
 *     interval for the indirect pings): ~0.2–0.4 s after the kill the member is suspect,
 *   - the suspicion timer runs between suspicionMult·max(1, log10 n)·probeInterval = 0.6 s (once
 *     k = suspicionMult − 2 other members confirmed it) and suspicionMaxTimeoutMult times that
 *     (2.4 s, nobody confirmed),
 *   - the dead message spreads by gossip in a few gossip intervals (0.2 s each).
 * The suspicion floor grows with log10 n, so in a 1 000-member cluster detection takes ~2–3 s:
 * more members mean more chances of a false suspicion, so each suspicion gets longer to be refuted.
 *
 * `testConfig` is the same protocol with everything shorter, for fast simulations.
 */
export interface MembershipConfig {
  /** Time between two probes by one member (ms); scaled up by the local awareness score. */
  probeInterval: number;
  /** Time to wait for the direct ack before asking others to probe indirectly (ms). */
  probeTimeout: number;
  /** How many members are asked to probe a target indirectly when the direct ping fails (k). */
  indirectChecks: number;
  /** Suspicion floor = suspicionMult · max(1, log10 n) · probeInterval; also sets the
   *  number of independent confirmations awaited (suspicionMult − 2). */
  suspicionMult: number;
  /** Suspicion ceiling (no confirmations) = this · floor. */
  suspicionMaxTimeoutMult: number;
  /** A broadcast is sent retransmitMult · ceil(log10(n + 1)) times by each member holding it. */
  retransmitMult: number;
  /** Time between two gossip rounds (ms); a round only sends when there is something to tell. */
  gossipInterval: number;
  /** How many random members one gossip round sends to. */
  gossipNodes: number;
  /** Period of the anti-entropy check with one random member (ms): a digest of the live set is
   *  compared (a ~100-byte exchange) and the full state only moves if the views differ. */
  syncInterval: number;
  /** Full-state syncs are paid from a token bucket: one token every fullSyncInterval (ms)... */
  fullSyncInterval: number;
  /** ...times max(1, n / syncScaleMembers), so the full-state bytes a member can spend per
   *  second stay flat as the cluster grows... */
  syncScaleMembers: number;
  /** ...and at most this many tokens saved up: a burst of joins can be repaired by a few full
   *  syncs in a row, at the same long-run rate. */
  fullSyncBurst: number;
  /** How long one sync attempt waits for the other side (ms); a join attempt fails after it. */
  syncTimeout: number;
  /** Period of the attempt to reach one random dead member again, to heal partitions (ms). */
  reconnectInterval: number;
  /** How long a dead member is remembered (to ignore stale news and to heal partitions) (ms). */
  deadRetention: number;
  /** How long a departed (left) member is remembered (ms). */
  leftRetention: number;
  /** Upper bound of the awareness score; timeouts are multiplied by (score + 1). */
  awarenessMax: number;
  /** Largest datagram we send (bytes): header and piggybacked broadcasts together. */
  packetSize: number;
  /** Join retry backoff: first delay, growth factor and ceiling (ms). */
  joinBackoffInitial: number;
  joinBackoffFactor: number;
  joinBackoffMax: number;
  /** Attempts of a join without `retry` before it fails. */
  joinAttempts: number;
  /** How long leave() waits for its announcement to go out before stopping (ms). */
  leaveTimeout: number;
}

export const defaultConfig: Readonly<MembershipConfig> = Object.freeze({
  probeInterval: 200,
  probeTimeout: 100,
  indirectChecks: 3,
  suspicionMult: 3,
  suspicionMaxTimeoutMult: 4,
  retransmitMult: 4,
  gossipInterval: 200,
  gossipNodes: 3,
  syncInterval: 5_000,
  fullSyncInterval: 30_000,
  syncScaleMembers: 32,
  fullSyncBurst: 8,
  syncTimeout: 1_000,
  reconnectInterval: 10_000,
  deadRetention: 10 * 60_000,
  leftRetention: 60_000,
  awarenessMax: 8,
  packetSize: 1400,
  joinBackoffInitial: 250,
  joinBackoffFactor: 1.6,
  joinBackoffMax: 10_000,
  joinAttempts: 3,
  leaveTimeout: 1_000,
});

/** The same protocol with shorter periods, for simulations that should finish quickly. */
export const testConfig: Readonly<MembershipConfig> = Object.freeze({
  ...defaultConfig,
  probeInterval: 100,
  probeTimeout: 50,
  gossipInterval: 100,
  syncInterval: 2_000,
  fullSyncInterval: 5_000,
  syncTimeout: 500,
  reconnectInterval: 2_000,
  deadRetention: 120_000,
  leftRetention: 30_000,
  joinBackoffInitial: 100,
  joinBackoffMax: 2_000,
  leaveTimeout: 500,
});

/** Retransmissions of one broadcast by one member in an n-member cluster. */
export function retransmitLimit(mult: number, n: number): number {
  return mult * Math.ceil(Math.log10(n + 1));
}

/** The time to earn one full-state sync token in an n-member cluster (see syncScaleMembers). */
export function syncPeriod(cfg: Pick<MembershipConfig, 'fullSyncInterval' | 'syncScaleMembers'>, n: number): number {
  return cfg.fullSyncInterval * Math.max(1, n / cfg.syncScaleMembers);
}
