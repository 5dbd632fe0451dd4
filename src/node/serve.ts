import type { Session } from '../cluster/session';
import type { Server } from './server';
import { CLIENT_LABELS, type ClientLabel, type InputWriter, type Origin, type OutputReader, type Received } from '../api/types';
import { METHODS, isPlainMethod } from '../api/methods';
import { SystemError, E } from '../kit/errors';
import { lazyOptions } from '../kit/abort';
import { q } from './oplog';
import { Lease } from './output-buffer';
import type { PushHub } from './push';
import { copyToCaller, recvToCaller } from './pipe-out';

/**
 * Serves the Client API on one session. Besides the plain methods (one request, one answer) it
 * keeps per-connection state, all released when the connection ends: anchor holds, output leases
 * (bytes in flight go back to the stream), input writers (closed) and received messages not yet
 * acknowledged (put back first in their channel). So a client that dies mid-call loses nothing.
 */
export interface Hello {
  /** What the client says it is; recorded as `says`, never as the origin's `via`. */
  via?: ClientLabel;
  /** The PID and worker id the dialler expects (from the URL); a mismatch is refused. */
  pid?: number;
  worker?: string;
}

export function serveSession(server: Server, session: Session, self: { worker: string; pid: number; local?: boolean; push?: PushHub }): void {
  // The origin is the server's to say: where the connection came from, never what it claims.
  const base: Origin = self.local ? { via: 'socket', peer: 'local' } : { via: 'tcp', peer: session.remote };
  let origin: Origin = base;
  const holds: string[] = [];
  const leases = new Map<number, OutputReader>();
  const inputs = new Map<number, InputWriter>();
  // Messages handed to the client and not yet acknowledged by it: the client's token to the
  // server-wide id it was given (src/node/takes.ts). For a path of another server, the take holds
  // that server's own acknowledgement: the home keeps the message until the final receiver
  // acknowledged it (issue 12), and takes it back if this connection, or this server, goes first.
  const unacked = new Map<number, number>();
  const takes = server.takes;
  const giveBack = (tok: number) => {
    const id = unacked.get(tok);
    unacked.delete(tok);
    if (id !== undefined) takes.giveBack(id);
  };
  let next = 1;
  const caller = { local: !!self.local, remote: session.remote };
  // A refused hello refuses everything after it on this connection: a client may send its first
  // call right behind the hello without waiting for the answer (the CLI does), and requests are
  // taken in order, so nothing runs for a dialler that addressed another server.
  let refused: SystemError | undefined;

  session.noteHandler = (op, args) => {
    if (refused) return;
    if (op === 'ack') {
      const id = unacked.get(Number(args));
      unacked.delete(Number(args));
      if (id !== undefined) takes.forget(id);
    } else if (op === 'nack') giveBack(Number(args));
    else if (op === 'abandonOutput') {
      // the client gave up on an openOutput whose answer it did not see: its lease, if granted
      const h = Number(args);
      leases.get(h)?.abandon();
      leases.delete(h);
    } else if (op === 'ackOutput' && Array.isArray(args)) {
      // a reader behind this connection wrote bytes out: they are delivered
      try {
        leases.get(Number(args[0]))?.ack(Number(args[1]));
      } catch {
        /* an offset outside the lease: the next read says so */
      }
    }
  };

  /** The lease a read names by its handle. */
  const output = (h: unknown): OutputReader => {
    const lease = leases.get(Number(h));
    if (!lease) throw E.notKind('no such output handle');
    return lease;
  };

  session.handler = async (op, raw, ctx) => {
    if (refused) throw refused;
    const args = Array.isArray(raw) ? raw : [];
    const opts = lazyOptions(ctx.abort, origin);
    if (isPlainMethod(op)) {
      const n = METHODS[op];
      const fn = server[op] as (...a: unknown[]) => Promise<unknown>;
      const r = await fn.apply(server, [...args.slice(0, n), ...Array(Math.max(0, n - args.length)).fill(undefined), opts]);
      if (op === 'hold') holds.push(String(args[0]));
      if (op === 'unhold') {
        const i = holds.indexOf(String(args[0]));
        if (i >= 0) holds.splice(i, 1);
      }
      return r;
    }
    switch (op) {
      case 'hello': {
        const h = (args[0] ?? {}) as Hello;
        if ((h.worker && h.worker !== self.worker) || (h.pid && h.pid !== self.pid)) {
          throw (refused = new SystemError('EACCES', 'addressed server is gone or authentication failed: worker identity mismatch'));
        }
        const says = CLIENT_LABELS.find((l) => l === h.via);
        origin = says ? { ...base, says } : base;
        return { id: server.id, url: server.url };
      }
      case 'recv':
      case 'tryrecvUnacked': {
        // [path, token]: the token is the client's (older clients send none: one is made)
        const path = String(args[0]);
        const tok = typeof args[1] === 'number' ? args[1] : -next++;
        const r = op === 'recv' ? await server.recvUnacked(path, opts) : await server.tryrecvUnacked(path, opts);
        const id = takes.add(r, path);
        unacked.set(tok, id);
        if (ctx.abort.aborted) {
          giveBack(tok); // the client gave up: its answer has nowhere to go
          throw E.interrupted();
        }
        // the id lets the client ask again on another connection whether its acknowledgement
        // arrived (ackTaken), when the one it came by ends while the acknowledgement is on its way
        return [tok, r.msg, id];
      }
      case 'ackRecv': {
        // the final receiver has the message: the home forgets it, then the receiver is told. If
        // the receiver's connection ends before it heard that, it never wrote the message out:
        // it goes back first in its channel (unless the receiver asked again elsewhere: Takes.ack)
        const id = unacked.get(Number(args[0]));
        if (id === undefined) throw new SystemError('ENOENT', 'no such message to acknowledge (its connection was lost)');
        unacked.delete(Number(args[0]));
        await takes.ack(id, ctx.abort.signal);
        return null;
      }
      case 'ackTaken': // [id]: as ackRecv, by the server-wide id, from any connection
        await takes.ack(Number(args[0]), ctx.abort.signal);
        return null;
      case 'openOutput': {
        // [path, which, handle]: the handle is the client's (older clients send none: one is
        // made), so it can give back a lease whose grant it never saw (`abandonOutput`).
        const lease = await server.openOutput(String(args[0]), args[1] === 'stderr' ? 'stderr' : 'stdout', opts);
        if (ctx.abort.aborted) {
          // the caller gave up (or its connection ended) while the lease was being granted:
          // nobody will read or release it, so it goes now
          lease.abandon();
          throw E.interrupted();
        }
        const h = typeof args[2] === 'number' ? args[2] : -next++;
        leases.get(h)?.abandon();
        leases.set(h, lease);
        return h;
      }
      case 'copyOutput': {
        // [path, which, target]: this server writes the stream into the caller's own pipe
        const which = args[1] === 'stderr' ? 'stderr' : 'stdout';
        return copyToCaller(server, String(args[0]), which, args[2], caller, opts);
      }
      case 'recvTo': // [path, target]: this server writes the message into the caller's own pipe
        return recvToCaller(server, String(args[0]), args[1], caller, opts);
      case 'read': {
        // [handle, max, offset]: reading at an offset acknowledges the bytes before it, so an
        // answer lost on the way (a cancelled call, a dead middle server) is served again.
        return output(args[0]).read(readSize(args[1]), opts, optional(args[2]));
      }
      case 'readAhead': {
        // [handle, max, ack]: acknowledges the bytes before ack, then reads on from the end of the
        // last read without acknowledging: [offset, bytes] (src/node/read-ahead.ts)
        const lease = output(args[0]);
        // a lease of this server's own: the session writes its bytes as they are held (no copy)
        if (lease instanceof Lease) return lease.readAheadParts(readSize(args[1]), opts, optional(args[2]));
        if (!lease.readAhead) throw E.notSupported('this output cannot be read ahead');
        return lease.readAhead(readSize(args[1]), opts, optional(args[2]));
      }
      case 'pushOpen': {
        // [handle]: a token for a data connection on which this server pushes the lease's stream
        // (src/node/push.ts); only a lease of its own, only without a cluster key
        const lease = output(args[0]);
        if (!self.push || !(lease instanceof Lease)) throw E.notSupported('this output cannot be pushed on a data connection');
        return self.push.offer(lease);
      }
      case 'push': {
        // [handle, token]: pushes from where the lease's reads ended; the end offset at the end
        const lease = output(args[0]);
        if (!self.push || !(lease instanceof Lease) || !Buffer.isBuffer(args[1])) throw E.notSupported('this output cannot be pushed on a data connection');
        return self.push.run(args[1], lease, ctx.abort.signal);
      }
      case 'unrecv': // a server in the middle gives back a message its client never got
        await server.unrecv(String(args[0]), args[1] as Buffer);
        return null;
      case 'abandon': {
        // the reader behind a server in the middle vanished: what it did not acknowledge stays
        const h = Number(args[0]);
        leases.get(h)?.abandon();
        leases.delete(h);
        return null;
      }
      case 'release': {
        // [handle, offset]: the bytes before the offset were delivered, the rest stays
        const h = Number(args[0]);
        const l = leases.get(h);
        leases.delete(h);
        const at = args[1] === undefined || args[1] === null ? undefined : Number(args[1]);
        await l?.release(at);
        return null;
      }
      case 'openInput': {
        const w = await server.openInput(String(args[0]), opts);
        if (ctx.abort.aborted) {
          // as for openOutput: a writer nobody holds would keep stdin open for good
          void w.close().catch(() => {});
          throw E.interrupted();
        }
        const h = next++;
        inputs.set(h, w);
        return h;
      }
      case 'write': {
        const w = inputs.get(Number(args[0]));
        if (!w) throw E.notKind('no such input handle');
        return w.write(args[1] as Buffer, opts);
      }
      case 'closeInput': {
        const h = Number(args[0]);
        await inputs.get(h)?.close();
        inputs.delete(h);
        return null;
      }
      default:
        throw E.unknownOperation(op);
    }
  };

  session.once('close', () => {
    for (const tok of [...unacked.keys()]) giveBack(tok);
    for (const l of leases.values()) l.abandon();
    for (const w of inputs.values()) void w.close().catch(() => {});
    for (const p of holds) void server.unhold(p).catch(() => {});
  });
}

/** A read's size as asked: 64 KiB when not given, 1 MiB at most. */
const readSize = (n: unknown): number => Math.min(Number(n) || 65536, 1 << 20);

/** An optional number on the wire (an offset or an acknowledgement): absent or null is undefined. */
const optional = (x: unknown): number | undefined => (x === undefined || x === null ? undefined : Number(x));
