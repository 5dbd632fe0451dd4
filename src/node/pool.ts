/**
 * The connection pool behind a server's router: one lazily dialled connection per live member,
 * reused by every call routed there, dropped when its session ends or the member leaves the
 * view. Calls in flight when a member is declared dead fail at once with EHOSTDOWN; a partition
 * that membership has not noticed yet is caught by the session's pings (deadMs).
 *
 * No loss through this server: a routed message whose reader vanished goes back to its home
 * (`unrecv`), a routed output reader that vanished leaves what it did not acknowledge (`abandon`),
 * and if this server dies, its connection's end makes the home do both for everything routed.
 */
import type { CallOptions, Client, InputWriter, OutputReader, ServerInfo } from '../api/types';
import { METHODS, type PlainMethod } from '../api/methods';
import type { Session } from '../cluster/session';
import { SystemError, toCircuitError } from '../kit/errors';

/** What the pool needs of a connection: a RemoteClient (the Client API, its session, unrecv). */
export type Conn = Client & {
  readonly session: Session;
  unrecv(path: string, msg: Buffer): Promise<void>;
};

/** Dials a member's URL (the daemon's key handshake, a short connect timeout). */
export type Dialer = (url: string) => Promise<Conn>;

interface Entry {
  id: string;
  url: string;
  conn?: Conn;
  dialing?: Promise<Conn>;
}

export class Pool {
  readonly #entries = new Map<string, Entry>();
  readonly #dial: Dialer;
  /** The URL of a live member, or undefined for an unknown, dead or departed one. */
  readonly #lookup: (id: string) => string | undefined;
  #closed = false;

  constructor(dial: Dialer, lookup: (id: string) => string | undefined) {
    this.#dial = dial;
    this.#lookup = lookup;
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
    if (!e) this.#entries.set(id, (e = { id, url }));
    return new Routed(this, e);
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
    const err = new SystemError('EHOSTDOWN', why);
    e.conn?.session.destroy(err);
    e.dialing?.then((c) => c.session.destroy(err), () => {});
  }

  close(): void {
    this.#closed = true;
    for (const id of [...this.#entries.keys()]) this.drop(id, 'server shutting down');
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
    const c = await this.#pool.conn(this.#e);
    try {
      return await fn(c);
    } catch (err) {
      throw blame(this.#e.id, c, err);
    }
  }

  async home(): Promise<ServerInfo> {
    return { id: this.#e.id, url: this.#e.url };
  }

  recv(path: string, opts?: CallOptions): Promise<Buffer> {
    return this.#call((c) => c.recv(path, opts));
  }

  /** Gives a message received through this server back to its home (its reader vanished). */
  unrecv(path: string, msg: Buffer): Promise<void> {
    return this.#call((c) => c.unrecv(path, msg));
  }

  openInput(path: string, opts?: CallOptions): Promise<InputWriter> {
    return this.#call((c) => c.openInput(path, opts));
  }

  async openOutput(path: string, which: 'stdout' | 'stderr', opts?: CallOptions): Promise<OutputReader> {
    const c = await this.#pool.conn(this.#e);
    const id = this.#e.id;
    let r: OutputReader;
    try {
      r = await c.openOutput(path, which, opts);
    } catch (err) {
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
      ack: (at) => r.ack(at),
      release: (at) => r.release(at),
      abandon: () => r.abandon(),
    };
  }

  async disconnect(): Promise<void> {}
}
