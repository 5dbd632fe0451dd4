import { isPromise, type Now } from '../../kit/now';
import { type Ctx, type FileSpec, type OpenFile, slice } from './control';

/**
 * Readable answers rendered once per open and sliced from there: a reader sees one consistent
 * value across offsets (peek, members, log, cap, cmd, records). A read-only snapshot is rendered
 * at open (snapshot below), so its reads are answered at once from the open file; an answer that
 * takes something (a message, an event, the process's exit) is rendered at the first read, never
 * at open (renderedOnce: the blocking one-shots of one-shot.ts, tryrecv).
 */
export type Render = (ctx: Ctx) => Now<Buffer | string>;

const toBuffer = (v: Buffer | string): Buffer => (typeof v === 'string' ? Buffer.from(v) : v);

/**
 * An answer rendered at the first read of an open. One render at a time per open; a failed or
 * interrupted render leaves nothing behind, so the next read tries again (an interrupted recv
 * consumed nothing).
 */
export function renderedOnce(render: Render): OpenFile {
  return rendered(render, null);
}

/**
 * The same, with the render started at open (ctx: the opener's). It acts on nothing, since the
 * render only looks; a failure it meets is kept for the first read, which returns it, so the
 * open itself never fails for it (docs/fs.md).
 */
export function renderedAtOpen(render: Render, ctx: Ctx): OpenFile {
  return rendered(render, ctx);
}

function rendered(render: Render, atOpen: Ctx | null): OpenFile {
  let answer: Buffer | null = null;
  let pending: Promise<Buffer> | null = null;
  // A failure of the render at open, returned by the first read (once).
  let failed: { err: unknown } | null = null;
  // Renders; the answer is kept at once when there is no wait. Throws what the render throws.
  const start = (ctx: Ctx): Promise<Buffer> | null => {
    const v = render(ctx);
    if (!isPromise(v)) {
      answer = toBuffer(v);
      return null;
    }
    const p = v.then(toBuffer);
    p.catch(() => {}); // an open closed without reading never asks for it
    return p;
  };
  if (atOpen) {
    try {
      pending = start(atOpen);
    } catch (err) {
      failed = { err };
    }
  }
  return {
    async read(len, pos, ctx) {
      if (failed) {
        const { err } = failed;
        failed = null;
        throw err;
      }
      if (answer === null) {
        const p = (pending ??= start(ctx));
        if (p) {
          try {
            answer = await p;
          } catch (err) {
            if (pending === p) pending = null;
            throw err;
          }
        }
      }
      return slice(answer!, len, pos);
    },
    readNow(len, pos) {
      return answer === null || failed ? undefined : slice(answer, len, pos);
    },
    answered() {
      return answer === null || failed ? undefined : answer;
    },
  };
}

/**
 * A read-only file whose content is a snapshot rendered at open: rendering only looks (peek,
 * members, the log), so opening still changes nothing.
 */
export function snapshot(name: string, render: Render): FileSpec {
  return { name, mode: 'r', blocking: false, open: (_flags, ctx) => renderedAtOpen(render, ctx) };
}

/**
 * A non-blocking answer that takes something (tryrecv): rendered at the first read, never at
 * open, so a probe takes nothing.
 */
export function takenAtRead(name: string, render: Render): FileSpec {
  return { name, mode: 'r', blocking: false, open: () => renderedOnce(render) };
}
