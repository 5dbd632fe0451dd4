/**
 * Time is passed in: cluster and node code take a Clock so tests can drive a ManualClock instead
 * of sleeping.
 */
export type TimerHandle = { readonly id: number };

export interface Clock {
  now(): number;
  setTimeout(fn: () => void, ms: number): TimerHandle;
  clearTimeout(h: TimerHandle | undefined): void;
}

let nextId = 1;

/** The real clock: wall time in ms and unref'd timers, so a pending timer never holds the process. */
export const systemClock: Clock = {
  now: () => Date.now(),
  setTimeout(fn, ms) {
    const t = setTimeout(fn, ms);
    t.unref();
    return { id: nextId++, t } as TimerHandle;
  },
  clearTimeout(h) {
    if (h) clearTimeout((h as unknown as { t: NodeJS.Timeout }).t);
  },
};

/** A clock that moves only when told; timers fire in time order during advance(). */
export class ManualClock implements Clock {
  #now: number;
  #timers = new Map<number, { at: number; fn: () => void; seq: number }>();
  #seq = 0;
  constructor(start = 0) {
    this.#now = start;
  }
  now(): number {
    return this.#now;
  }
  setTimeout(fn: () => void, ms: number): TimerHandle {
    const id = nextId++;
    this.#timers.set(id, { at: this.#now + Math.max(0, ms), fn, seq: this.#seq++ });
    return { id };
  }
  clearTimeout(h: TimerHandle | undefined): void {
    if (h) this.#timers.delete(h.id);
  }
  /** Moves time forward by ms, firing every timer that falls due, in order. */
  advance(ms: number): void {
    const end = this.#now + ms;
    for (;;) {
      let best: [number, { at: number; fn: () => void; seq: number }] | undefined;
      for (const e of this.#timers) {
        if (e[1].at <= end && (!best || e[1].at < best[1].at || (e[1].at === best[1].at && e[1].seq < best[1].seq))) best = e;
      }
      if (!best) break;
      this.#timers.delete(best[0]);
      this.#now = Math.max(this.#now, best[1].at);
      best[1].fn();
    }
    this.#now = end;
  }
  pending(): number {
    return this.#timers.size;
  }
}
