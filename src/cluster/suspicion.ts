/**
 * The Lifeguard suspicion timer. When a member is suspected, a timer starts at a long timeout
 * (max); every independent confirmation (another member suspecting the same incarnation)
 * shortens it on a log scale, down to the floor (min) after k confirmations. A member that is
 * slow rather than dead gets time to refute; a member everybody agrees is gone is declared dead
 * quickly.
 */
import type { Clock, TimerHandle } from '../kit/clock';

/**
 * Milliseconds left on a suspicion timer after n of k expected confirmations, elapsed ms after
 * it started. Pure, so the timing is table-tested without a clock. May be negative (overdue).
 */
export function suspicionRemaining(n: number, k: number, elapsed: number, min: number, max: number): number {
  if (k < 1) return min - elapsed;
  const frac = Math.log(n + 1) / Math.log(k + 1);
  const raw = Math.floor(max - frac * (max - min));
  return Math.max(raw, min) - elapsed;
}

/** Suspicion floor for an n-member cluster: mult · max(1, log10 n) · interval. */
export function suspicionMin(mult: number, n: number, interval: number): number {
  return mult * Math.max(1, Math.log10(Math.max(1, n))) * interval;
}

export class Suspicion {
  /** Confirmations counted so far; never more than k. */
  #n = 0;
  /** Confirmations that make the timer reach its floor. */
  readonly #k: number;
  readonly #min: number;
  readonly #max: number;
  readonly #start: number;
  /** Who suspected already: the first suspecter and each confirmer count once. */
  readonly #from = new Set<string>();
  readonly #clock: Clock;
  readonly #onTimeout: () => void;
  #timer: TimerHandle | undefined;

  constructor(from: string, k: number, min: number, max: number, clock: Clock, onTimeout: () => void) {
    this.#k = k;
    this.#min = min;
    this.#max = max;
    this.#clock = clock;
    this.#onTimeout = onTimeout;
    this.#start = clock.now();
    this.#from.add(from);
    this.#arm(k < 1 ? min : max);
  }

  /** Counts an independent confirmation; true if it was new (the caller re-gossips it then). */
  confirm(from: string): boolean {
    if (this.#n >= this.#k || this.#from.has(from)) return false;
    this.#from.add(from);
    this.#n++;
    const left = suspicionRemaining(this.#n, this.#k, this.#clock.now() - this.#start, this.#min, this.#max);
    this.#arm(Math.max(0, left));
    return true;
  }

  /** Stops the timer (the member refuted, or was declared dead another way). */
  stop(): void {
    this.#clock.clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  get confirmations(): number {
    return this.#n;
  }

  #arm(ms: number): void {
    this.#clock.clearTimeout(this.#timer);
    this.#timer = this.#clock.setTimeout(() => {
      this.#timer = undefined;
      this.#onTimeout();
    }, ms);
  }
}
