/**
 * An abort that becomes a real AbortSignal only when something asks for one. Node 20 takes about
 * 3 µs to make an AbortSignal (an EventTarget whose prototype is swapped after construction),
 * and adding and removing an 'abort' listener costs about as much again: more than all the rest
 * of what the server does for a channel message that does not wait. Every request a session
 * serves can be cancelled, but few ever wait long enough for that to matter; so a served
 * request carries one of these, the hot paths ask it whether it was aborted and listen to it
 * directly (isAborted, whenAborted), and the AbortSignal in its call options is made at the
 * first read of `signal`, already aborted if the request was.
 */
export class LazyAbort {
  #aborted = false;
  #reason: unknown;
  #controller: AbortController | undefined;
  #listeners: Array<() => void> | undefined;

  get aborted(): boolean {
    return this.#aborted;
  }

  /** What abort() was given (undefined before, or when it was given nothing). */
  get reason(): unknown {
    return this.#reason;
  }

  /** The AbortSignal, made at the first read. */
  get signal(): AbortSignal {
    if (!this.#controller) {
      this.#controller = new AbortController();
      if (this.#aborted) this.#controller.abort(this.#reason);
    }
    return this.#controller.signal;
  }

  abort(reason?: unknown): void {
    if (this.#aborted) return;
    this.#aborted = true;
    this.#reason = reason;
    const listeners = this.#listeners;
    this.#listeners = undefined;
    for (const fn of listeners ?? []) fn();
    this.#controller?.abort(reason);
  }

  /** Calls fn once when this aborts (at once if it has); returns what takes fn off again. */
  onAbort(fn: () => void): () => void {
    if (this.#aborted) {
      fn();
      return () => {};
    }
    (this.#listeners ??= []).push(fn);
    return () => {
      const i = this.#listeners?.indexOf(fn) ?? -1;
      if (i >= 0) this.#listeners!.splice(i, 1);
    };
  }
}

const LAZY = Symbol('circuit.lazyAbort');

type WithSignal = { signal?: AbortSignal };

/**
 * Call options with an origin and abort's signal, made only when it is read. The getter is the
 * class's (an object literal with a getter is several times slower to make), so a spread of
 * these options (`{ ...opts }`) would drop the signal: pass them on as they are.
 */
class LazyOptions<O> {
  readonly [LAZY]: LazyAbort;
  constructor(
    abort: LazyAbort,
    readonly origin: O,
  ) {
    this[LAZY] = abort;
  }

  get signal(): AbortSignal {
    return this[LAZY].signal;
  }
}

/** Call options with an origin and abort's signal, made only when it is read. */
export function lazyOptions<O>(abort: LazyAbort, origin: O): { readonly signal: AbortSignal; origin: O } {
  return new LazyOptions(abort, origin);
}

function lazyOf(opts: WithSignal | undefined): LazyAbort | undefined {
  return opts instanceof LazyOptions ? opts[LAZY] : undefined;
}

/** Whether the call these options belong to was aborted, without making its signal. */
export function isAborted(opts: WithSignal | undefined): boolean {
  const lazy = lazyOf(opts);
  return lazy ? lazy.aborted : opts?.signal?.aborted === true;
}

/**
 * Calls fn once when the call these options belong to is aborted, without making its signal;
 * returns what takes fn off again, or undefined when the call cannot be aborted (no signal).
 */
export function whenAborted(opts: WithSignal | undefined, fn: () => void): (() => void) | undefined {
  const lazy = lazyOf(opts);
  if (lazy) return lazy.onAbort(fn);
  const signal = opts?.signal;
  if (!signal) return undefined;
  if (signal.aborted) {
    fn();
    return () => {};
  }
  signal.addEventListener('abort', fn, { once: true });
  return () => signal.removeEventListener('abort', fn);
}
