import { E } from './errors';

/**
 * Callers waiting until a condition holds that another side makes true (bytes arrived, the
 * end came): wait() resolves once wakeAll() finds its condition true, and fails with EINTR when
 * its signal aborts (it then waits no more).
 */
export class Waiters {
  #waiting: Array<() => void> = [];

  wait(ready: () => boolean, signal?: AbortSignal): Promise<void> {
    if (ready()) return Promise.resolve();
    if (signal?.aborted) return Promise.reject(E.interrupted());
    return new Promise((resolve, reject) => {
      const onAbort = () => {
        this.#waiting = this.#waiting.filter((w) => w !== wake);
        reject(E.interrupted());
      };
      const wake = () => {
        if (!ready()) {
          this.#waiting.push(wake); // woken for something else: keep waiting
          return;
        }
        signal?.removeEventListener('abort', onAbort);
        resolve();
      };
      this.#waiting.push(wake);
      signal?.addEventListener('abort', onAbort, { once: true });
    });
  }

  wakeAll(): void {
    const w = this.#waiting;
    this.#waiting = [];
    for (const cb of w) cb();
  }
}
