import type { InputWriter, OutputReader } from '../../api/types';
import type { Ctx, FileSpec, OpenFile } from './control';
import { E } from '../../kit/errors';
import { isAborted } from '../../kit/abort';
import { withReadAhead } from '../../node/read-ahead';

/**
 * Byte streams: a process's stdout/stderr and a subscription's events (read), and a process's
 * stdin (write). Offsets mean nothing here; each read takes what comes next. The lease or writer
 * is taken at the first read or write (never at open) and given back at release.
 */

/**
 * stdout or stderr: one lease per open. Each read asks at the count of bytes this open has
 * delivered, so bytes read for a caller that was interrupted before it got them are asked for
 * again by the next read, or left to the next reader at release: what this reader did not take
 * stays, exactly.
 */
export function outputStream(name: 'stdout' | 'stderr'): FileSpec {
  return {
    name,
    mode: 'r',
    blocking: true,
    open(): OpenFile {
      let lease: Promise<OutputReader> | null = null;
      // The lease once it is in hand, for reads answered without waiting.
      let reader: OutputReader | null = null;
      // Reads queued or under way: a read without waiting never overtakes them.
      let waiting = 0;
      let ended = false;
      let delivered = 0;
      // The last answer and what its reader had written when it got it: a reader killed before
      // writing anything more never passed those bytes on (see flush).
      let last: { n: number; by: { pid: number; wrote: number } | null } | null = null;
      // One read at a time per open: offsets follow the order in which answers were delivered.
      let queue: Promise<unknown> = Promise.resolve();
      const readOnce = async (len: number, ctx: Ctx): Promise<Buffer> => {
        if (ended) return Buffer.alloc(0);
        lease ??= ctx.client.openOutput(ctx.anchor, name, ctx.call).then((r) => withReadAhead(r, false, true), (err) => {
          lease = null;
          throw err;
        });
        reader = await lease;
        const chunk = await reader.read(len, ctx.call, delivered);
        if (chunk === null) {
          ended = true;
          return Buffer.alloc(0);
        }
        // The caller died waiting (or was answered EINTR already): these bytes are not
        // delivered; the next read asks for them again.
        if (isAborted(ctx.call) || ctx.interrupted?.()) throw E.interrupted();
        delivered += chunk.length;
        last = { n: chunk.length, by: ctx.wrote?.() ?? null };
        return chunk;
      };
      return {
        read(len, _pos, ctx) {
          last = null; // the reader came back for more: the last answer was delivered
          waiting++;
          const r = queue.then(() => readOnce(len, ctx)).finally(() => waiting--);
          queue = r.catch(() => {});
          return r;
        },
        // Bytes that are here already are answered in the turn the read came, without a look at
        // the caller's signals: that window is as short as the one between such a look and the
        // answer. A caller that dies of a signal after this answer, having written nothing, gives
        // the bytes back at its flush, as after any other read.
        readInto(into, len, wrote) {
          if (ended) {
            last = null;
            return 0;
          }
          if (!reader?.readNow || waiting > 0) return undefined;
          const n = reader.readNow(into, len, delivered);
          if (n === undefined) return undefined;
          last = null;
          if (n === null) {
            ended = true;
            return 0;
          }
          delivered += n;
          last = { n, by: wrote() };
          return n;
        },
        lend(revoke) {
          if (ended || waiting > 0 || !reader?.lendPipe) return undefined;
          return reader.lendPipe(delivered, revoke);
        },
        reclaim(count, keep, by) {
          reader?.reclaim?.(count, keep);
          if (count === 0) return;
          // as after the same reads through JavaScript: the last one's bytes wait for the next
          delivered += count;
          last = keep.length ? { n: keep.length, by } : null;
        },
        async flush(ctx) {
          // A close by the reader's own exit after a fatal signal, with nothing written since
          // its last read: that read died with it, so its bytes stay for the next reader.
          const p = ctx.progress?.();
          if (last?.by && p && p.pid === last.by.pid && p.dying && p.wrote === last.by.wrote) delivered -= last.n;
          last = null;
        },
        async release() {
          if (!lease) return;
          await queue;
          const reader = await lease.catch(() => null);
          await reader?.release(delivered);
        },
      };
    },
  };
}

/** A subscription's events, one a line, never ending: each read waits for the next event. */
export function eventStream(name: string): FileSpec {
  return {
    name,
    mode: 'r',
    blocking: true,
    open(): OpenFile {
      // What a short read left of the last event, handed out before the next is asked for.
      let rest: Buffer = Buffer.alloc(0);
      return {
        async read(len, _pos, ctx) {
          if (rest.length === 0) rest = await recvOrGiveBack(ctx);
          const out = rest.subarray(0, len);
          rest = rest.subarray(out.length);
          return out;
        },
      };
    },
  };
}

/** stdin: bytes go to the process as they are written; this writer closes at release. */
export function inputStream(name: string): FileSpec {
  return {
    name,
    mode: 'w',
    blocking: true,
    open(): OpenFile {
      let writer: Promise<InputWriter> | null = null;
      return {
        async write(data, ctx: Ctx) {
          writer ??= ctx.client.openInput(ctx.anchor, ctx.call).catch((err) => {
            writer = null;
            throw err;
          });
          await (await writer).write(data, ctx.call);
        },
        async release() {
          if (!writer) return;
          const w = await writer.catch(() => null);
          await w?.close();
        },
      };
    },
  };
}

/**
 * One message or event; if the caller was interrupted while it was on the way, it goes back
 * first in its channel or subscription and the read fails with EINTR, so nothing is lost.
 */
export async function recvOrGiveBack(ctx: Ctx): Promise<Buffer> {
  if (ctx.client.recvUnacked) {
    // Acknowledged end to end before it is handed over: its home keeps it until then, also
    // across a server in the middle that dies (issue 12).
    const r = await ctx.client.recvUnacked(ctx.anchor, ctx.call);
    // A message taken in this process needs no acknowledgement: one look at the caller, below.
    if (!r.acked) {
      if (ctx.interrupted?.()) {
        await r.giveBack();
        throw E.interrupted();
      }
      await r.ack();
    }
    if (ctx.interrupted?.() && ctx.client.unrecv) {
      await ctx.client.unrecv(ctx.anchor, r.msg);
      throw E.interrupted();
    }
    return r.msg;
  }
  const msg = await ctx.client.recv(ctx.anchor, ctx.call);
  if (ctx.interrupted?.() && ctx.client.unrecv) {
    await ctx.client.unrecv(ctx.anchor, msg);
    throw E.interrupted();
  }
  return msg;
}

/**
 * One message or event if there is one (EAGAIN at once otherwise), acknowledged end to end
 * before it is handed over, like recvOrGiveBack: a message taken through another server is
 * its home's until the acknowledgement is confirmed, so a connection lost in between gives it
 * back (or confirms it over a new one: src/node/takes.ts) and it is never both read and back.
 */
export async function tryrecvAcked(ctx: Ctx): Promise<Buffer> {
  if (!ctx.client.tryrecvUnacked) return ctx.client.tryrecv(ctx.anchor, ctx.call);
  const r = await ctx.client.tryrecvUnacked(ctx.anchor, ctx.call);
  if (!r.acked) await r.ack();
  return r.msg;
}
