/**
 * Exponential backoff as a pure function: the delay before retry number `attempt` (0-based).
 * `jitter` in [0, 1) is a random draw supplied by the caller, so tests stay deterministic; the
 * delay is spread over [d·(1 − spread/2), d·(1 + spread/2)].
 */
export interface BackoffPolicy {
  initial: number;
  factor: number;
  max: number;
  /** Fraction of the delay that jitter spreads over (0 = none). */
  spread?: number;
}

export function backoffDelay(attempt: number, p: BackoffPolicy, jitter = 0.5): number {
  const base = Math.min(p.max, p.initial * Math.pow(p.factor, Math.max(0, attempt)));
  const spread = p.spread ?? 0;
  return Math.round(base * (1 - spread / 2 + spread * jitter));
}

/**
 * Calls `attempt` until it returns true, waiting backoffDelay(n, p) after the n-th try that
 * returned false; rejects with `timedOut` once the next try would start more than `ms` after the
 * first. An attempt gives up for good by throwing (its error is the one said).
 */
export async function retryFor(ms: number, p: BackoffPolicy, timedOut: unknown, attempt: () => Promise<boolean>): Promise<void> {
  const until = Date.now() + ms;
  for (let n = 0; ; n++) {
    if (await attempt()) return;
    const wait = backoffDelay(n, p);
    if (Date.now() + wait > until) throw timedOut;
    await new Promise((res) => setTimeout(res, wait));
  }
}
