import { randomInt } from 'node:crypto';
import type { Received } from '../api/types';
import { SystemError } from '../kit/errors';
import { q } from './oplog';

/**
 * The messages this server handed to receivers over its connections and that are not yet
 * settled, each under a server-wide id that goes out with the message (issue 12).
 *
 * A receiver acknowledges a message on the connection it came by (`ackRecv`). When that
 * connection dies while the acknowledgement is on its way, the receiver cannot tell whether it
 * arrived: the home may have forgotten the message, or given it back when the connection
 * ended. So it asks again by id over a new connection (`ackTaken`), and this book answers with
 * what really happened: acknowledged (write it out), or given back (do not). Exactly one of the
 * two happens to every message, whatever the connections do.
 *
 * Every attempt to acknowledge claims the message. An attempt whose own connection ended before
 * it could answer puts the message back in its channel, unless a newer attempt (the receiver
 * asking again on another connection) claimed it meanwhile: then that one answers. Settled ids
 *  * are known without a record each: any id this server handed out that is no longer open was
 * acknowledged, unless it is among the last NOT_ACKED_KEPT that were not.
 */
export class Takes {
  // Ids start at a random point, so that a receiver asking a restarted server (same socket or
  // address) about an id of the server before cannot hit a message of the new one.
  readonly #first = randomInt(1, 2 ** 47);
  #next = this.#first;
  readonly #open = new Map<number, Take>();
  /**
   * Settled ids that were not acknowledged: given back, or never confirmed by their home. Every
   * other id handed out and no longer open was acknowledged, so only these (rare: a receiver
   * that left, a connection lost) need remembering; the oldest go past NOT_ACKED_KEPT.
   */
  readonly #notAcked = new Map<number, 'returned' | 'unconfirmed'>();
  readonly #unrecv: (path: string, msg: Buffer) => Promise<void>;
  /** Where a message put back or possibly lost is said (the server's log). */
  readonly #say: (line: string) => void;

  constructor(unrecv: (path: string, msg: Buffer) => Promise<void>, say: (line: string) => void) {
    this.#unrecv = unrecv;
    this.#say = say;
  }

  /** Records a message handed out: its id. */
  add(r: Received, path: string): number {
    const id = this.#next++;
    this.#open.set(id, { r, path, claim: 0 });
    return id;
  }

  /** Messages handed out and not yet settled (for tests). */
  get open(): number {
    return this.#open.size;
  }

  /**
   * Acknowledges a message for the receiver behind `signal`, its home forgetting it (through any
   * server in the middle). Resolves once it is forgotten and the receiver may be told; rejects
   * with ENOENT when it went back to its channel instead, or is not known here. If `signal` is
   * aborted by then (the receiver's connection ended before it could be told) and no newer
   * attempt claimed the message, it goes back first in its channel and this rejects with EINTR.
   */
  async ack(id: number, signal: AbortSignal): Promise<void> {
    const t = this.#open.get(id);
    if (!t) return this.#answerSettled(id);
    const claim = ++t.claim;
    t.acking ??= t.r.ack().then(
      () => this.#settle(id, 'acked'),
      (e) => {
        this.#unconfirmed(id, t.path, e);
        throw e;
      },
    );
    await t.acking;
    if (!signal.aborted) return;
    if (t.claim === claim && !this.#notAcked.has(id)) {
      this.#remember(id, 'returned');
      this.#say(`a receiver of ${q(t.path)} left before its acknowledgement was confirmed: its message goes back`);
      await this.#unrecv(t.path, t.r.msg);
    }
    throw new SystemError('EINTR', 'interrupted: the receiver left before its acknowledgement was confirmed');
  }

  /** The receiver could not take it (or its connection ended first): back in its channel. */
  giveBack(id: number): void {
    const t = this.#open.get(id);
    // an acknowledgement on its way may have reached the home: its attempt decides
    if (!t || t.acking || t.claim > 0) return;
    this.#settle(id, 'returned');
    void t.r.giveBack().catch(() => {});
  }

  /** Forgets an acknowledged message without waiting (a receiver's one-way 'ack' note). */
  forget(id: number): void {
    const t = this.#open.get(id);
    if (!t || t.acking) return;
    t.claim++;
    t.acking = t.r.ack().then(
      () => this.#settle(id, 'acked'),
      (e) => this.#unconfirmed(id, t.path, e),
    );
  }

  #settle(id: number, how: 'acked' | 'returned'): void {
    this.#open.delete(id);
    if (how === 'returned') this.#remember(id, how);
  }

  /**
   * Not confirmed by the home, even after asking again over new connections for as long as a
   * routed acknowledgement retries: the home gave it back, or forgot it.
   */
  #unconfirmed(id: number, path: string, e: unknown): void {
    this.#remember(id, 'unconfirmed');
    this.#say(`the acknowledgement of a message of ${q(path)} was not confirmed by its home (${(e as Error).message}): if the home had it, it is lost`);
  }

  #remember(id: number, how: 'returned' | 'unconfirmed'): void {
    this.#open.delete(id);
    this.#notAcked.set(id, how);
    if (this.#notAcked.size > NOT_ACKED_KEPT) this.#notAcked.delete(this.#notAcked.keys().next().value!);
  }

  /** For an id no longer open: nothing if it was acknowledged, else ENOENT saying why. */
  #answerSettled(id: number): void {
    const how = this.#notAcked.get(id);
    const ours = Number.isSafeInteger(id) && id >= this.#first && id < this.#next;
    if (ours && !how) return;
    throw new SystemError(
      'ENOENT',
      how === 'returned'
        ? 'the message went back to its channel: its acknowledgement came after the receiver was given up'
        : how === 'unconfirmed'
          ? 'the message could not be confirmed with its home: it went back there, or is lost'
          : `no message ${id} to acknowledge here (its server restarted?)`,
    );
  }
}

/** How many ids settled without an acknowledgement are remembered for receivers that ask again. */
export const NOT_ACKED_KEPT = 1 << 16;

interface Take {
  r: Received;
  path: string;
  /** Attempts to acknowledge so far; the latest one decides for a receiver that left. */
  claim: number;
  acking?: Promise<void>;
}
