import type { ElementState, KindModule } from '../element';
import { E } from '../../kit/errors';
import { deferred, type Deferred } from '../../kit/deferred';
import { isAborted, whenAborted } from '../../kit/abort';
import type { CallOptions } from '../../api/types';

/**
 * A channel (docs/fs.md): a Go-like chan of byte-string messages. A send returns once
 * the channel has taken the message (a buffer slot or a waiting receiver); a receive returns one
 * message. An aborted send enqueued nothing; an aborted receive took nothing. Close lets the
 * buffer drain; scrub aborts everything.
 */
export interface ChanStat {
  Cap: number;
  Closed: boolean;
  Aborted: boolean;
  NumSend: number;
  NumRecv: number;
}

interface Sender {
  msg: Buffer;
  done: Deferred<void>;
}

export class Chan implements ElementState {
  #cap: number;
  #buf: Buffer[] = [];
  #senders: Sender[] = [];
  #receivers: Deferred<Buffer>[] = [];
  #closed = false;
  #aborted = false;
  #numSend = 0;
  #numRecv = 0;

  constructor(cap: number) {
    this.#cap = checkCap(cap);
  }

  get used(): boolean {
    return this.#numSend + this.#numRecv + this.#senders.length + this.#receivers.length > 0;
  }

  setCap(cap: number): void {
    const c = checkCap(cap);
    if (this.used) throw E.capInUse();
    this.#cap = c;
  }

  send(msg: Buffer, opts?: CallOptions): Promise<void> {
    if (this.#aborted) return Promise.reject(E.chanAborted());
    if (this.#closed) return Promise.reject(E.chanClosed());
    if (isAborted(opts)) return Promise.reject(E.interrupted());
    const r = this.#receivers.shift();
    if (r) {
      this.#numSend++;
      this.#numRecv++;
      r.resolve(msg);
      return Promise.resolve();
    }
    if (this.#buf.length < this.#cap) {
      this.#numSend++;
      this.#buf.push(msg);
      return Promise.resolve();
    }
    const s: Sender = { msg, done: deferred<void>() };
    this.#senders.push(s);
    return this.#waitOn(s.done, opts, () => this.#remove(this.#senders, s));
  }

  /** A send that never waits: EAGAIN when there is no room and no receiver waiting. */
  trysend(msg: Buffer): void {
    if (this.#aborted) throw E.chanAborted();
    if (this.#closed) throw E.chanClosed();
    if (!this.#receivers.length && this.#buf.length >= this.#cap) throw E.wouldBlock('channel has no room and no waiting receiver');
    void this.send(msg);
  }

  /** A receive that never waits: EAGAIN when nothing is there; otherwise one message, as recv. */
  tryrecv(): Promise<Buffer> {
    if (!this.#aborted && !this.#buf.length && !this.#senders.length && !this.#closed) {
      return Promise.reject(E.wouldBlock('channel is empty'));
    }
    return this.recv();
  }

  recv(opts?: CallOptions): Promise<Buffer> {
    if (this.#aborted) return Promise.reject(E.chanAborted());
    if (isAborted(opts)) return Promise.reject(E.interrupted());
    if (this.#buf.length) {
      const m = this.#buf.shift()!;
      this.#numRecv++;
      // a blocked sender now fits in the buffer (unless an unrecv had filled it past its cap)
      const s = this.#buf.length < this.#cap ? this.#senders.shift() : undefined;
      if (s) {
        this.#numSend++;
        this.#buf.push(s.msg);
        s.done.resolve();
      }
      return Promise.resolve(m);
    }
    const s = this.#senders.shift();
    if (s) {
      this.#numSend++;
      this.#numRecv++;
      s.done.resolve();
      return Promise.resolve(s.msg);
    }
    if (this.#closed) return Promise.reject(E.chanClosed());
    const r = deferred<Buffer>();
    this.#receivers.push(r);
    return this.#waitOn(r, opts, () => this.#remove(this.#receivers, r));
  }

  /** Gives a received message back (its receiver vanished before it got it): it goes first again. */
  unrecv(msg: Buffer): void {
    if (this.#aborted) return;
    this.#numRecv--;
    this.#numSend--;
    const r = this.#receivers.shift();
    if (r) {
      this.#numSend++;
      this.#numRecv++;
      r.resolve(msg);
      return;
    }
    this.#buf.unshift(msg);
    this.#numSend++;
  }

  close(): void {
    if (this.#aborted) throw E.chanAborted();
    if (this.#closed) throw E.chanAlreadyClosed();
    this.#closed = true;
    // Waiting receivers can only exist when nothing is buffered and nobody is sending.
    for (const r of this.#receivers.splice(0)) r.reject(E.chanClosed());
  }

  scrub(): void {
    if (this.#aborted) return;
    this.#aborted = true;
    this.#buf = [];
    for (const r of this.#receivers.splice(0)) r.reject(E.chanAborted());
    for (const s of this.#senders.splice(0)) s.done.reject(E.chanAborted());
  }

  peek(): ChanStat {
    return { Cap: this.#cap, Closed: this.#closed, Aborted: this.#aborted, NumSend: this.#numSend, NumRecv: this.#numRecv };
  }

  /** d's promise; aborting the call (opts' signal) takes the waiter off (remove) and fails it with EINTR. */
  #waitOn<T>(d: Deferred<T>, opts: CallOptions | undefined, remove: () => void): Promise<T> {
    const stop = whenAborted(opts, () => {
      if (d.settled) return;
      remove();
      d.reject(E.interrupted());
    });
    if (!stop) return d.promise;
    d.promise.then(stop, stop);
    return d.promise;
  }

  #remove<T>(list: T[], x: T): void {
    const i = list.indexOf(x);
    if (i >= 0) list.splice(i, 1);
  }
}

function checkCap(cap: number): number {
  if (!Number.isSafeInteger(cap) || cap < 0) throw E.badCap();
  return cap;
}

/** The chan kind (docs/fs.md, `chan`). */
export const chan: KindModule<Chan, { cap: number }> = {
  kind: 'chan',
  defaultSpec: { cap: 0 },
  parse(spec) {
    const cap = (spec as { cap?: unknown } | null)?.cap;
    if (typeof cap !== 'number') throw E.badCap();
    return { cap: checkCap(cap) };
  },
  describe: (s) => String(s.cap),
  make: async (s) => new Chan(s.cap),
  verbs: {
    setCap: (c, [cap]) => c.setCap(cap),
    send: (c, [msg], opts) => c.send(msg, opts),
    trysend: (c, [msg]) => c.trysend(msg),
    recv: (c, [], opts) => c.recv(opts),
    tryrecv: (c) => c.tryrecv(),
    unrecv: (c, [msg]) => c.unrecv(msg),
    close: (c) => c.close(),
  },
};
