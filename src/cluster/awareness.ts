/**
 * Lifeguard's local health score. A member that misses acks and nacks it should have got is
 * probably the slow one (overloaded, paused, losing packets); it then stretches its own probe
 * interval and timeouts instead of accusing healthy members. Score 0 is healthy.
 */
export class Awareness {
  #score = 0;
  readonly #max: number;

  constructor(max: number) {
    this.#max = max;
  }

  /** Adds delta (negative for good news), clamped to [0, max − 1]. */
  apply(delta: number): void {
    this.#score = Math.min(this.#max - 1, Math.max(0, this.#score + delta));
  }

  get score(): number {
    return this.#score;
  }

  /** A timeout stretched by the current score. */
  scale(ms: number): number {
    return ms * (this.#score + 1);
  }
}
