import type { ElementState, KindModule } from '../element';
import type { Member } from '../../api/types';
import { E } from '../../kit/errors';
import { deferred, type Deferred } from '../../kit/deferred';

/**
 * @join and @leave (docs/membership.md): a lossless, unbounded queue of events from the hosting
 * server's membership view. An event is a server's anchor path. @join starts with every server in
 * the view, itself included. Scrub unsubscribes (the original leaked the queue).
 */
export interface View {
  members(): Member[];
  on(ev: 'join' | 'leave', fn: (m: Member) => void): unknown;
  off(ev: 'join' | 'leave', fn: (m: Member) => void): unknown;
}

export class Subscription implements ElementState {
  #queue: string[] = [];
  #waiters: Deferred<string>[] = [];
  #closed = false;
  readonly #fn = (m: Member) => this.#push('/' + m.id);

  constructor(
    readonly source: 'join' | 'leave',
    readonly view: View,
  ) {
    if (source === 'join') for (const m of view.members()) if (m.state === 'alive' || m.state === 'suspect') this.#queue.push('/' + m.id);
    view.on(source, this.#fn);
  }

  #push(ev: string): void {
    const w = this.#waiters.shift();
    if (w) w.resolve(ev);
    else this.#queue.push(ev);
  }

  /** The next event; an aborted wait takes nothing. */
  recv(signal?: AbortSignal): Promise<string> {
    if (this.#closed) return Promise.reject(E.aborted());
    if (this.#queue.length) return Promise.resolve(this.#queue.shift()!);
    if (signal?.aborted) return Promise.reject(E.interrupted());
    const d = deferred<string>();
    this.#waiters.push(d);
    if (signal) {
      const onAbort = () => {
        if (d.settled) return;
        this.#waiters.splice(this.#waiters.indexOf(d), 1);
        d.reject(E.interrupted());
      };
      signal.addEventListener('abort', onAbort, { once: true });
      d.promise.finally(() => signal.removeEventListener('abort', onAbort)).catch(() => {});
    }
    return d.promise;
  }

  /** The next event without waiting: EAGAIN when there is none. */
  tryrecv(): Promise<string> {
    if (!this.#closed && !this.#queue.length) return Promise.reject(E.wouldBlock('no event pending'));
    return this.recv();
  }

  /** Puts an event back first (its receiver vanished before it got it). */
  unrecv(ev: string): void {
    if (this.#closed) return;
    const w = this.#waiters.shift();
    if (w) w.resolve(ev);
    else this.#queue.unshift(ev);
  }

  peek(): { Source: string; Pending: number; Closed: boolean } {
    return { Source: this.source, Pending: this.#queue.length, Closed: this.#closed };
  }

  scrub(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.view.off(this.source, this.#fn);
    for (const w of this.#waiters.splice(0)) w.reject(E.aborted());
  }
}

/** An event as recv answers it: the server's anchor path and a newline. */
const line = (ev: string) => Buffer.from(ev + '\n');

/** The @join or @leave kind, over the view of the server that makes it. */
function subscriptionKind(source: 'join' | 'leave'): KindModule<Subscription, null> {
  return {
    kind: source === 'join' ? '@join' : '@leave',
    defaultSpec: null,
    parse: () => null,
    describe: () => '',
    make: async (_, ctx) => {
      if (!ctx.view) throw E.notSupported('this server has no membership view');
      return new Subscription(source, ctx.view);
    },
    verbs: {
      recv: async (s, [], opts) => line(await s.recv(opts?.signal)),
      tryrecv: async (s) => line(await s.tryrecv()),
      unrecv: (s, [msg]) => s.unrecv(msg.toString().replace(/\n$/, '')),
    },
  };
}

export const join = subscriptionKind('join');
export const leave = subscriptionKind('leave');
