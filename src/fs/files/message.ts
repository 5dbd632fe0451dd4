import { E } from '../../kit/errors';
import { isPromise } from '../../kit/now';
import { MESSAGE_MAX } from '../../api/limits';
import type { Ctx, FileSpec, OpenFile } from './control';

/**
 * A channel's `send`: one open-write-close is one message. Writes are only buffered; close(2)
 * (the flush) hands the message to the channel and returns when the channel has taken it, so
 * a blocked close is interruptible and an interrupted one enqueued nothing. A close with nothing
 * written since the last one sends nothing (a probe never sends an empty message).
 */
export function message(name: string): FileSpec {
  return {
    name,
    mode: 'w',
    blocking: true,
    open(): OpenFile {
      let chunks: Buffer[] = [];
      let size = 0;
      let checked = false;
      const message = () => {
        const msg = Buffer.concat(chunks);
        chunks = [];
        size = 0;
        return msg;
      };
      // Keeps one write's bytes, or refuses them when they cross the bound.
      const take = (data: Buffer) => {
        size += data.length;
        if (size > MESSAGE_MAX) {
          // refused at the write that crosses the bound; nothing of it is kept or sent
          chunks = [];
          throw E.tooLarge(size, MESSAGE_MAX);
        }
        chunks.push(data);
      };
      // A shell's builtin echo never sees what its close(2) returns, so a channel already
      // closed is refused at the first write of the message, where the error shows.
      const refuseClosed = (p: unknown) => {
        if ((p as { Closed?: boolean } | null)?.Closed) throw E.chanClosed();
      };
      // The first write's look at the channel, when writeNow could not finish it at once.
      let looking: Promise<unknown> | null = null;
      let writing = 0;
      return {
        async write(data, ctx) {
          writing++;
          try {
            if (!checked) {
              checked = true;
              refuseClosed(await (looking ?? ctx.client.peek(ctx.anchor, ctx.call)));
            }
            take(data);
          } finally {
            writing--;
          }
        },
        writeNow(data, ctx) {
          if (writing) return false; // never ahead of a write still waiting
          if (!checked) {
            if (!ctx.client.peekNow) return false;
            const p = ctx.client.peekNow(ctx.anchor, ctx.call);
            if (isPromise(p)) {
              looking = p; // write, which runs next, waits for it
              return false;
            }
            checked = true;
            refuseClosed(p);
          }
          take(data);
          return true;
        },
        async flush(ctx: Ctx) {
          if (chunks.length === 0) return;
          await ctx.client.send(ctx.anchor, message(), ctx.call);
        },
        async release(ctx) {
          // Only when no close(2) came (the kernel always flushes first; kept for safety).
          if (chunks.length === 0) return;
          await ctx.client.send(ctx.anchor, message(), { origin: ctx.call.origin });
        },
      };
    },
  };
}

/**
 * A channel's `trysend`: each write(2) is one message, sent at once or refused at once (EAGAIN
 * when the channel has no room and no receiver waits), so the write itself reports it, as a
 * non-blocking write does; a shell's builtin echo, which ignores close(2), sees it too.
 */
export function tryMessage(name: string): FileSpec {
  return {
    name,
    mode: 'w',
    blocking: false,
    open: (): OpenFile => ({
      write: (data, ctx) => ctx.client.trysend(ctx.anchor, Buffer.from(data), ctx.call),
    }),
  };
}
