/**
 * The connection pool behind a server's router: one lazily dialled connection per live member,
 * reused by every call routed there, dropped when its session ends or the member leaves the
 * view. Calls in flight when a member is declared dead fail at once with EHOSTDOWN; a partition
 * that membership has not noticed yet is caught by the session's pings (deadMs).
 *
 * No loss through this server: a routed message whose reader vanished goes back to its home
 * (`unrecv`), a routed output reader that vanished leaves what it did not acknowledge (`abandon`),
 * and if this server dies, its connection's end makes the home do both for everything routed.
 *
 * A connection nobody uses (no call, stream, stdin writer, or message received through it and
 * not yet acknowledged) for `idleMs` (default 60 s; 0 keeps it) is closed; the next call dials
 * again. Connections to members a server talked
 * to once do not pile up for as long as the member lives.
 */
import type { CallOptions, Client, InputWriter, OutputReader, Received, ServerInfo } from '../api/types';
import { METHODS, type PlainMethod } from '../api/methods';
import { ACK_AGAIN_BACKOFF, ACK_AGAIN_MS } from '../api/limits';
import { retryFor } from '../kit/backoff';
import type { Session } from '../cluster/session';
import { SystemError, isUnknownOperation, toCircuitError } from '../kit/errors';

/** What the pool needs of a connection: a RemoteClient (the Client API, its session, unrecv). */
export type Conn = Client & {
  readonly session: Session;
  unrecv(path: string, msg: Buffer): Promise<void>;
  recvUnacked(path: string, opts?: CallOptions): Promise<Received>;
  tryrecvUnacked(path: string, opts?: CallOptions): Promise<Received>;
  ackTaken(id: number): Promise<void>;
};

/** Dials a member's URL (the daemon's key handshake, a short connect timeout). */
export type Dialer = (url: string) => Promise<Conn>;

interface Entry {
  id: string;
  url: string;
  conn?: Conn;
  dialing?: Promise<Conn>;
  /** Calls, output leases, stdin writers and received messages not yet acknowledged using the connection now. */
  busy: number;
  idle?: NodeJS.Timeout;
}

export interface PoolOptions {
  /** Close a connection unused for this long (ms); 0: never. Default DEFAULT_IDLE_MS. */
  idleMs?: number;
}

/** How long an unused pooled connection stays open. */
export const DEFAULT_IDLE_MS = 60_000;

export class Pool {
  readonly #entries = new Map<string, Entry>();
  readonly #dial: Dialer;
  /** The URL of a live member, or undefined for an unknown, dead or departed one. */
  readonly #lookup: (id: string) => string | undefined;
  readonly #idleMs: number;
  #closed = false;

  constructor(dial: Dialer, lookup: (id: string) => string | undefined, opts: PoolOptions = {}) {
    this.#dial = dial;
    this.#lookup = lookup;
    this.#idleMs = opts.idleMs ?? DEFAULT_IDLE_MS;
  }

  /** The router: a client for a live member's paths, undefined otherwise (EHOSTDOWN upstream). */
  route(id: string): Client | undefined {
    if (this.#closed) return undefined;
    const url = this.#lookup(id);
    if (!url) return undefined;
    let e = this.#entries.get(id);
    if (e && e.url !== url) {
      this.drop(id, `server ${id} moved to ${url}`);
      e = undefined;
    }
    if (!e) this.#entries.set(id, (e = { id, url, busy: 0 }));
    return new Routed(this, e);
  }

  /**
   * Acknowledges message `take` of member `id` again, over a new connection, after the one it
   * came by ended with its acknowledgement on the way: retried while the member cannot be
   * reached, for ACK_AGAIN_MS at most. Resolves once the home confirmed; rejects with its answer
   * (ENOENT: the message went back to its channel), or with `first` when the home is too old to
   * be asked or never answered.
   */
  async ackAgain(id: string, take: number, first: unknown): Promise<void> {
    await retryFor(ACK_AGAIN_MS, ACK_AGAIN_BACKOFF, first, async () => {
      if (this.#closed) throw first;
      const r = this.route(id) as Routed | undefined;
      if (!r) return false;
      try {
        await r.ackTaken(take);
        return true;
      } catch (err) {
        const e = toCircuitError(err);
        if (isUnknownOperation(e)) throw first;
        if (e.code !== 'EHOSTDOWN') throw e;
        return false;
      }
    });
  }

  /** Number of pooled connections (open or being dialled), for tests. */
  get size(): number {
    return this.#entries.size;
  }

  /** Closes every connection to a member: its calls in flight fail with EHOSTDOWN. */
  drop(id: string, why: string): void {
    const e = this.#entries.get(id);
    if (!e) return;
    this.#entries.delete(id);
    clearTimeout(e.idle);
    const err = new SystemError('EHOSTDOWN', why);
    e.conn?.session.destroy(err);
    e.dialing?.then((c) => c.session.destroy(err), () => {});
  }

  close(): void {
    this.#closed = true;
    for (const id of [...this.#entries.keys()]) this.drop(id, 'server shutting down');
  }

  /** Open connections (dialled and not closed), for tests. */
  get open(): number {
    let n = 0;
    for (const e of this.#entries.values()) if (e.conn && !e.conn.session.isClosed) n++;
    return n;
  }

  /** Someone starts using the entry's connection: it is not idle. */
  hold(e: Entry): void {
    e.busy++;
    clearTimeout(e.idle);
    e.idle = undefined;
  }

  /** ...and is done with it: once nobody uses it for idleMs, it is closed. */
  unhold(e: Entry): void {
    if (--e.busy > 0 || this.#idleMs <= 0 || this.#closed) return;
    clearTimeout(e.idle);
    e.idle = setTimeout(() => {
      e.idle = undefined;
      if (e.busy > 0 || !e.conn) return;
      const c = e.conn;
      e.conn = undefined;
      c.session.end();
      c.session.destroy(new SystemError('ECONNRESET', `idle connection to ${e.id} closed`));
    }, this.#idleMs);
    e.idle.unref();
  }

  /** The shared connection of an entry, dialled on first use. */
  conn(e: Entry): Promise<Conn> {
    if (e.conn && !e.conn.session.isClosed) return Promise.resolve(e.conn);
    if (this.#entries.get(e.id) !== e) return Promise.reject(gone(e.id));
    if (!e.dialing) {
      e.dialing = this.#dialFor(e).then(
        (c) => {
          e.dialing = undefined;
          if (this.#entries.get(e.id) !== e) {
            c.session.destroy();
            throw gone(e.id);
          }
          e.conn = c;
          c.session.once('close', () => {
            if (e.conn === c) e.conn = undefined;
          });
          return c;
        },
        (err) => {
          e.dialing = undefined;
          throw err;
        },
      );
    }
    return e.dialing;
  }

  async #dialFor(e: Entry): Promise<Conn> {
    try {
      return await this.#dial(e.url);
    } catch (err) {
      throw new SystemError('EHOSTDOWN', `server ${e.id} is unreachable at ${e.url}: ${toCircuitError(err).message}`, { cause: err });
    }
  }
}

function gone(id: string): SystemError {
  return new SystemError('EHOSTDOWN', `server ${id} left the cluster`);
}

/** A failure on a connection that died is the member's failure: name it. */
function blame(id: string, c: Conn | undefined, err: unknown): unknown {
  const e = toCircuitError(err);
  if (c && c.session.isClosed && e.system && !e.message.startsWith('server ')) {
    return new SystemError('EHOSTDOWN', `server ${id} is unreachable: ${e.message}`, { cause: err });
  }
  return e;
}

type PlainFns = { [M in PlainMethod]: Client[M] };
interface Routed extends PlainFns {}

/** The Client a routed call sees: every method waits for the pooled connection, then calls. */
class Routed implements Client {
  readonly #pool: Pool;
  readonly #e: Entry;

  constructor(pool: Pool, e: Entry) {
    this.#pool = pool;
    this.#e = e;
    for (const m of Object.keys(METHODS) as PlainMethod[]) {
      (this as unknown as Record<string, unknown>)[m] = (...a: unknown[]) => this.#call((c) => (c[m] as (...x: unknown[]) => Promise<unknown>)(...a));
    }
  }

  async #call<T>(fn: (c: Conn) => Promise<T>): Promise<T> {
    this.#pool.hold(this.#e);
    try {
      const c = await this.#pool.conn(this.#e);
      try {
        return await fn(c);
      } catch (err) {
        throw blame(this.#e.id, c, err);
      }
    } finally {
      this.#pool.unhold(this.#e);
    }
  }

  /** Holds the connection for an open stream until done() (called at most once counts). */
  #lease(): () => void {
    this.#pool.hold(this.#e);
    let held = true;
    return () => {
      if (held) this.#pool.unhold(this.#e);
      held = false;
    };
  }

  async home(): Promise<ServerInfo> {
    return { id: this.#e.id, url: this.#e.url };
  }

  recv(path: string, opts?: CallOptions): Promise<Buffer> {
    return this.#call((c) => c.recv(path, opts));
  }

  /** The home keeps the message until ack() of the final receiver; giveBack() returns it. */
  recvUnacked(path: string, opts?: CallOptions): Promise<Received> {
    return this.#held((c) => c.recvUnacked(path, opts));
  }

  tryrecvUnacked(path: string, opts?: CallOptions): Promise<Received> {
    return this.#held((c) => c.tryrecvUnacked(path, opts));
  }

  /**
   * A message received through the connection holds it until acknowledged or given back: the
   * acknowledgement goes on it, and closing it for idleness would make the home take the
   * message back from a receiver that has it.
   */
  async #held(fn: (c: Conn) => Promise<Received>): Promise<Received> {
    const done = this.#lease();
    let c: Conn | undefined;
    let r: Received;
    try {
      r = await this.#call((conn) => fn((c = conn)));
    } catch (err) {
      done();
      throw err;
    }
    return {
      msg: r.msg,
      ack: () => this.#ackSurely(r, c!).finally(done),
      giveBack: () => r.giveBack().finally(done),
    };
  }

  /**
   * Acknowledges a message received through the connection c. If c ends while the
   * acknowledgement is on its way, nobody can tell whether the home got it: ask the home again
   * by the message's id over a new connection until it says (src/node/takes.ts), rather than
   * fail and leave a message the home forgot and nobody wrote out.
   */
  async #ackSurely(r: Received, c: Conn): Promise<void> {
    try {
      await r.ack();
    } catch (err) {
      if (r.id === undefined || !c.session.isClosed) throw blame(this.#e.id, c, err);
      await this.#pool.ackAgain(this.#e.id, r.id, blame(this.#e.id, c, err));
    }
  }

  /** Asks the home whether a message's acknowledgement arrived, acknowledging it if not yet. */
  ackTaken(id: number): Promise<void> {
    return this.#call((c) => c.ackTaken(id));
  }

  /** Gives a message received through this server back to its home (its reader vanished). */
  unrecv(path: string, msg: Buffer): Promise<void> {
    return this.#call((c) => c.unrecv(path, msg));
  }

  async openInput(path: string, opts?: CallOptions): Promise<InputWriter> {
    const done = this.#lease();
    try {
      const w = await this.#call((c) => c.openInput(path, opts));
      return {
        write: (data, o) => w.write(data, o),
        close: () => w.close().finally(done),
      };
    } catch (err) {
      done();
      throw err;
    }
  }

  async openOutput(path: string, which: 'stdout' | 'stderr', opts?: CallOptions): Promise<OutputReader> {
    const done = this.#lease();
    const c = await this.#pool.conn(this.#e).catch((err) => {
      done();
      throw err;
    });
    const id = this.#e.id;
    let r: OutputReader;
    try {
      r = await c.openOutput(path, which, opts);
    } catch (err) {
      done();
      throw blame(id, c, err);
    }
    return {
      read: async (max, o, at) => {
        try {
          return await r.read(max, o, at);
        } catch (err) {
          throw blame(id, c, err);
        }
      },
      ...(r.readAhead && {
        readAhead: async (max: number, o?: CallOptions, ack?: number) => {
          try {
            return await r.readAhead!(max, o, ack);
          } catch (err) {
            throw blame(id, c, err);
          }
        },
      }),
      ...(r.openPush && { openPush: () => r.openPush!() }),
      ack: (at) => r.ack(at),
      release: (at) => r.release(at).finally(done),
      abandon: () => {
        done();
        r.abandon();
      },
    };
  }

  async disconnect(): Promise<void> {}
}
