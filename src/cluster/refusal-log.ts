/**
 * Refused connections, logged without letting a flood flood the log: the first refusal after a
 * quiet second is logged at once, in full; those that follow within the second are counted, and
 * one summary line per second says how many there were, for which reasons and from where. So at
 * most one line a second, whatever a stranger does.
 */
import { systemClock, type Clock, type TimerHandle } from '../kit/clock';

const MAX_REASONS = 4;
const MAX_ADDRS = 3;

export class RefusalLog {
  readonly #say: (line: string) => void;
  readonly #clock: Clock;
  readonly #windowMs: number;
  #timer: TimerHandle | undefined;
  #count = 0;
  #reasons = new Map<string, number>();
  #addrs = new Map<string, number>();

  constructor(say: (line: string) => void, opts: { clock?: Clock; windowMs?: number } = {}) {
    this.#say = say;
    this.#clock = opts.clock ?? systemClock;
    this.#windowMs = opts.windowMs ?? 1000;
  }

  /** One refusal: `line` is the whole message, `addr` the peer's address (without port). */
  add(line: string, addr: string): void {
    if (!this.#timer) {
      this.#say(line);
      this.#open();
      return;
    }
    this.#count++;
    const reason = generalize(line, addr);
    if (this.#reasons.has(reason) || this.#reasons.size < 64) this.#reasons.set(reason, (this.#reasons.get(reason) ?? 0) + 1);
    if (this.#addrs.has(addr) || this.#addrs.size < 64) this.#addrs.set(addr, (this.#addrs.get(addr) ?? 0) + 1);
  }

  /** Stops the timer, logging what is counted. */
  close(): void {
    this.#clock.clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#summary();
  }

  #open(): void {
    this.#timer = this.#clock.setTimeout(() => {
      this.#timer = undefined;
      if (this.#count === 0) return; // a quiet second: the next refusal is logged at once
      this.#summary();
      this.#open();
    }, this.#windowMs);
  }

  #summary(): void {
    if (this.#count === 0) return;
    const top = <K>(m: Map<K, number>, n: number) => [...m].sort((a, b) => b[1] - a[1]).slice(0, n);
    const reasons = top(this.#reasons, MAX_REASONS).map(([r, n]) => `${n} × ${r}`);
    if (this.#reasons.size > MAX_REASONS) reasons.push('…');
    const addrs = top(this.#addrs, MAX_ADDRS).map(([a]) => a);
    const others = this.#addrs.size - addrs.length;
    const from = others > 0 ? `${addrs.join(', ')} and ${others}${this.#addrs.size >= 64 ? '+' : ''} other addresses` : addrs.join(', ');
    this.#say(`rejecting connections: ${this.#count} more in the last ${this.#windowMs / 1000} s (${reasons.join('; ')}) from ${from}`);
    this.#count = 0;
    this.#reasons.clear();
    this.#addrs.clear();
  }
}

/** The line with the peer's address (and port) replaced by `*`, so alike refusals count together. */
function generalize(line: string, addr: string): string {
  return line
    .split(addr)
    .join('*')
    .replace(/\*\]?:\d+/g, '*')
    .replace(/^rejecting connection: /, '');
}
