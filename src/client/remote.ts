import type { Received, Client, CallOptions, ClientLabel, InputWriter, OutputReader, PipeTarget, ServerInfo } from '../api/types';
import { METHODS, type PlainMethod } from '../api/methods';
import { dial, dialData, type Handshake } from '../cluster/tcp';
import net = require('node:net');
import { Session } from '../cluster/session';
import type { Hello } from '../node/serve';
import { parseUrl } from '../cluster/url';
import { SystemError, isUnknownOperation } from '../kit/errors';

/**
 * The Client API over a connection to one server. Calls on paths of other servers are routed
 * by that server; answers and streams come back on this connection, so this side never needs
 * to be reachable. Received messages are acknowledged once in hand, so a message is never lost
 * between the channel and a client that dies.
 */
export interface RemoteOptions {
  via?: ClientLabel;
  handshake?: Handshake;
  timeoutMs?: number;
  /**
   * Resolve as soon as the connection is up, with the hello still on its way: the first calls go
   * out right behind it (a round trip less, for a short-lived client like the CLI). No answer is
   * handed over before the hello's: if the hello is refused, every call fails with its error, and
   * the server has run none of them (it refuses what follows a refused hello, src/node/serve.ts).
   */
  early?: boolean;
}

export async function connect(url: string, opts: RemoteOptions = {}): Promise<RemoteClient> {
  const u = parseUrl(url);
  const session = await dial(u.host, u.port, { handshake: opts.handshake, timeoutMs: opts.timeoutMs });
  return greet(session, { via: opts.via ?? 'api', pid: u.pid, worker: u.worker }, opts);
}

/**
 * Connects to a server's control socket (src/node/control.ts). No key and no URL: the socket's
 * file mode decides who may connect, and whoever can is the server's owner (or its --group).
 */
export async function connectSocket(path: string, opts: RemoteOptions = {}): Promise<RemoteClient> {
  const session = await new Promise<Session>((resolve, reject) => {
    const sock = net.connect({ path });
    sock.once('connect', () => {
      sock.removeAllListeners('error');
      resolve(new Session(sock));
    });
    sock.once('error', (e: NodeJS.ErrnoException) => {
      const why = e.code === 'EACCES' ? 'permission denied (the socket is its owner\'s)' : e.code === 'ENOENT' ? 'no such socket' : e.code === 'ECONNREFUSED' ? 'nobody listens there (a stale socket)' : e.message;
      reject(new SystemError(e.code === 'EACCES' ? 'EACCES' : 'EHOSTDOWN', `cannot reach the server at ${JSON.stringify(path)}: ${why}`, { cause: e }));
    });
  });
  return greet(session, { via: opts.via ?? 'api' }, opts);
}

async function greet(session: Session, hello: Hello, opts: RemoteOptions): Promise<RemoteClient> {
  const info = session.call('hello', [hello], { deadlineMs: opts.timeoutMs ?? 5000 }).then(
    (i) => i as ServerInfo,
    (e) => {
      session.destroy();
      // A server that speaks a keyed handshake looks like garbage to a keyless client, and the
      // other way round: both mean the same to the user.
      throw new SystemError('EACCES', 'addressed server is gone or authentication failed', { cause: e });
    },
  );
  return new RemoteClient(session, opts.early ? info : await info);
}

type Plain = { [M in PlainMethod]: Client[M] };

export interface RemoteClient extends Plain {}

export class RemoteClient implements Client {
  #tok = 1;
  readonly #info: Promise<ServerInfo>;
  /** The hello's answer while it is awaited (an early client, RemoteOptions.early). */
  #hello: Promise<ServerInfo> | undefined;

  constructor(
    readonly session: Session,
    info: ServerInfo | Promise<ServerInfo>,
  ) {
    this.#info = Promise.resolve(info);
    if (info instanceof Promise) {
      this.#hello = info;
      info.then(() => (this.#hello = undefined), () => {});
    }
    for (const m of Object.keys(METHODS) as PlainMethod[]) {
      const n = METHODS[m];
      (this as unknown as Record<string, unknown>)[m] = (...a: unknown[]) => {
        const opts = a[n] as CallOptions | undefined;
        return this.#call(m, a.slice(0, n), { signal: opts?.signal });
      };
    }
    // tryrecv too keeps its message at home until this side has it (a lost answer gives it back)
    this.tryrecv = async (path, opts) => {
      if (!this.#oldTry) {
        try {
          return await this.#takeAcked('tryrecvUnacked', path, opts);
        } catch (e) {
          if (!this.#isOldTry(e)) throw e;
        }
      }
      return (await this.#plainTry(path, opts)).msg;
    };
  }

  home(): Promise<ServerInfo> {
    return this.#info;
  }

  /**
   * Resolves once the hello was answered (at once unless the client is early); rejects with the
   * error of a refused hello. Local: home() is the wire's 'home' call (the method table's
   * function replaces the one above).
   */
  greeted(): Promise<void> {
    return this.#info.then(() => {});
  }

  /** A call whose answer, or error, waits for the hello's answer if that is still to come. */
  #call(op: string, args: unknown, opts?: { signal?: AbortSignal }): Promise<unknown> {
    const p = this.session.call(op, args, opts);
    const hello = this.#hello;
    if (!hello) return p;
    p.catch(() => {}); // a refused hello's error is the one said
    return hello.then(() => p);
  }

  recv(path: string, opts?: CallOptions): Promise<Buffer> {
    return this.#takeAcked('recv', path, opts);
  }

  /**
   * Receives a message that stays its home's until ack() (a request: it resolves once the home,
   * through any server in the middle, forgot the message) or giveBack(). The token is ours, so
   * a recv whose answer never came (interrupted) can still be given back by name.
   */
  recvUnacked(path: string, opts?: CallOptions): Promise<Received> {
    return this.#take('recv', path, opts);
  }

  /** tryrecv as recvUnacked; a server too old for it answers a plain tryrecv. */
  async tryrecvUnacked(path: string, opts?: CallOptions): Promise<Received> {
    if (this.#oldTry) return this.#plainTry(path, opts);
    try {
      return await this.#take('tryrecvUnacked', path, opts);
    } catch (e) {
      if (!this.#isOldTry(e)) throw e;
      return this.#plainTry(path, opts);
    }
  }

  #oldTry = false;

  /** Whether e says the server has no tryrecvUnacked (then plain tryrecv from now on). */
  #isOldTry(e: unknown): boolean {
    if (!isUnknownOperation(e)) return false;
    return (this.#oldTry = true);
  }

  async #plainTry(path: string, opts?: CallOptions): Promise<Received> {
    const msg = (await this.#call('tryrecv', [path], { signal: opts?.signal })) as Buffer;
    return { msg, ack: async () => {}, giveBack: () => this.unrecv(path, msg) };
  }

  async #take(op: 'recv' | 'tryrecvUnacked', path: string, opts?: CallOptions): Promise<Received> {
    const tok = this.#tok++;
    const [msg, id] = await this.#takeCall(op, path, tok, opts);
    return {
      msg,
      ...(id !== undefined && { id }),
      ack: async () => {
        await this.session.call('ackRecv', [tok]);
      },
      giveBack: async () => this.session.notify('nack', tok),
    };
  }

  /**
   * Acknowledges a message by the id its server gave it, on this connection, whichever
   * connection it came by: for a receiver whose connection ended while its acknowledgement was
   * on the way (src/node/takes.ts). Rejects with ENOENT when the message went back instead.
   */
  async ackTaken(id: number): Promise<void> {
    await this.#call('ackTaken', [id]);
  }

  /**
   * A message acknowledged as soon as it is in hand, for callers that do not wait for the
   * acknowledgement (recv, tryrecv): a one-way 'ack' note instead of an 'ackRecv' request. The
   * server forgets or routes it on the same terms; what this saves is an answer, its promise and
   * the server's per-request state: with 64 receives in flight, half the time of a 16-byte message.
   */
  async #takeAcked(op: 'recv' | 'tryrecvUnacked', path: string, opts?: CallOptions): Promise<Buffer> {
    const tok = this.#tok++;
    const [msg] = await this.#takeCall(op, path, tok, opts);
    this.session.notify('ack', tok);
    return msg;
  }

  /** The message and the id its server gave it (older servers give none). */
  async #takeCall(op: 'recv' | 'tryrecvUnacked', path: string, tok: number, opts?: CallOptions): Promise<[Buffer, number | undefined]> {
    try {
      const a = (await this.#call(op, [path, tok], { signal: opts?.signal })) as [number, Buffer, number?];
      return [a[1], typeof a[2] === 'number' ? a[2] : undefined];
    } catch (e) {
      if (opts?.signal?.aborted) this.session.notify('nack', tok); // in case it was taken meanwhile
      throw e;
    }
  }

  /** Gives a message back to its channel (used by a server routing for a client that vanished). */
  async unrecv(path: string, msg: Buffer): Promise<void> {
    await this.#call('unrecv', [path, msg]);
  }

  /**
   * A lease on a stream of the element's home. Every read names its offset, so a read whose
   * answer never came (interrupted, or lost with a server in the middle) is asked again from the
   * same place and nothing is skipped.
   */
  async openOutput(path: string, which: 'stdout' | 'stderr', opts?: CallOptions): Promise<OutputReader> {
    // The handle is ours to name, so a lease granted for a call we gave up on (interrupted, its
    // answer dropped) can still be given back: without that, the server kept it for as long as
    // the connection lived and every later reader was refused (`already has a reader`).
    const tok = this.#tok++;
    let h: unknown;
    try {
      h = await this.#call('openOutput', [path, which, tok], { signal: opts?.signal });
    } catch (e) {
      if (opts?.signal?.aborted) this.session.notify('abandonOutput', tok);
      throw e;
    }
    let cursor = 0;
    let done = false;
    return {
      read: async (max, o, at = cursor) => {
        const b = (await this.session.call('read', [h, max, at], { signal: o?.signal })) as Buffer | null;
        if (b) cursor = at + b.length;
        return b;
      },
      // Passed on as asked; src/node/read-ahead.ts keeps them in flight and names every
      // offset of its own reads, acknowledgements and release.
      readAhead: async (max, o, ack) => {
        const [at, b] = (await this.session.call('readAhead', [h, max, ack ?? null], { signal: o?.signal })) as [number, Buffer | null];
        return [Number(at), b];
      },
      // a data connection for the home to push the stream on (src/node/push.ts): only across TCP
      // to a home that pushes (no cluster key: it says ENOTSUP otherwise)
      openPush: async () => {
        const hp = /^(.*):(\d+)$/.exec(this.session.remote);
        if (done || this.session.isClosed || !hp || hp[1] === 'undefined') return undefined;
        let token: Buffer;
        try {
          token = (await this.session.call('pushOpen', [h])) as Buffer;
        } catch (e) {
          if ((e as { code?: string }).code === 'ENOTSUP' || isUnknownOperation(e)) return undefined;
          throw e;
        }
        const sock = await dialData(hp[1]!, Number(hp[2]), token);
        const fd = (require('../node/push') as typeof import('../node/push')).takeSocketFd(sock);
        return { fd, run: async (signal: AbortSignal) => Number(await this.session.call('push', [h, token], { signal })) };
      },
      ack: (at) => {
        // written to the connection at once: a reader that wrote bytes out and acknowledges
        // them (circuit stdout) leaves only the gap between the two syscalls to a SIGKILL
        if (!done) this.session.notify('ackOutput', [h, at], { now: true });
      },
      release: async (at = cursor) => {
        if (done) return;
        done = true;
        if (!this.session.isClosed) await this.session.call('release', [h, at]);
      },
      abandon: () => {
        if (done) return;
        done = true;
        if (!this.session.isClosed) this.session.call('abandon', [h]).catch(() => {});
      },
    };
  }

  /** The server writes the stream into the caller's own stdout (Client.copyOutput, src/node/pipe-out.ts). */
  async copyOutput(path: string, which: 'stdout' | 'stderr', target: PipeTarget, opts?: CallOptions): Promise<number | 'refused'> {
    const r = await this.#call('copyOutput', [path, which, target], { signal: opts?.signal });
    return r === 'refused' ? r : Number(r);
  }

  /** The server writes a received message into the caller's own stdout (Client.recvTo). */
  async recvTo(path: string, target: PipeTarget, opts?: CallOptions): Promise<number | 'refused'> {
    const r = await this.#call('recvTo', [path, target], { signal: opts?.signal });
    return r === 'refused' ? r : Number(r);
  }

  async openInput(path: string, opts?: CallOptions): Promise<InputWriter> {
    const h = await this.#call('openInput', [path], { signal: opts?.signal });
    return {
      write: async (data, o) => {
        await this.session.call('write', [h, data], { signal: o?.signal });
      },
      close: async () => {
        if (!this.session.isClosed) await this.session.call('closeInput', [h]);
      },
    };
  }

  /**
   * For a process about to exit (the CLI): writes what is still queued, notes such as a recv's
   * ack included, and ends the connection without waiting for the server to end its side.
   */
  async hangUp(): Promise<void> {
    await Promise.race([this.session.end(), this.session.closed, new Promise((r) => setTimeout(r, 1000).unref())]);
  }

  async disconnect(): Promise<void> {
    this.session.end();
    await Promise.race([this.session.closed, new Promise((r) => setTimeout(r, 1000))]);
    this.session.destroy();
  }
}
