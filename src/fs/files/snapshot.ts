import { type Ctx, type FileSpec, type OpenFile, slice } from './control';

/**
 * A readable answer rendered once, at the first read of an open, and sliced from there: a
 * reader sees one consistent value across offsets (peek, members, log, cap, cmd, records).
 * The same mechanism serves blocking one-shots (wait, exit, recv): see one-shot.ts.
 */
export type Render = (ctx: Ctx) => Promise<Buffer | string>;

export function renderedOnce(render: Render): OpenFile {
  let answer: Buffer | null = null;
  // One render at a time per open; a failed or interrupted render leaves nothing behind, so the
  // next read tries again (an interrupted recv consumed nothing).
  let pending: Promise<Buffer> | null = null;
  return {
    async read(len, pos, ctx) {
      if (answer === null) {
        pending ??= render(ctx).then(
          (v) => (typeof v === 'string' ? Buffer.from(v) : v),
          (err) => {
            pending = null;
            throw err;
          },
        );
        answer = await pending;
      }
      return slice(answer, len, pos);
    },
    readNow(len, pos) {
      return answer === null ? undefined : slice(answer, len, pos);
    },
  };
}

/** A read-only file whose content is a snapshot rendered at the first read. */
export function snapshot(name: string, render: Render): FileSpec {
  return { name, mode: 'r', blocking: false, open: () => renderedOnce(render) };
}
