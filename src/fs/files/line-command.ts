import type { Ctx, FileSpec, OpenFile } from './control';
import { LINE_MAX } from '../../api/limits';
import { E, type AppError } from '../../kit/errors';

/**
 * Plain-text commands, one a line (ctl, signal, cap, address, unset, records). Every write(2)
 * runs the lines it completes, in order, and fails if one fails (FS.md rule 2); the rest of that
 * write is then dropped. A last line without its newline runs at close. Blank lines are skipped.
 */
export interface LineRun {
  /** Runs the complete lines of one write (or the close); they are trimmed and non-blank. */
  (lines: string[], ctx: Ctx): Promise<void>;
}

export function lineCommand(name: string, run: LineRun): FileSpec {
  return {
    name,
    mode: 'w',
    blocking: false,
    open(): OpenFile {
      let buf = '';
      let broken: AppError | null = null;
      const go = async (lines: string[], ctx: Ctx) => {
        const todo = lines.map((l) => l.trim()).filter((l) => l !== '');
        if (todo.length) await run(todo, ctx);
      };
      return {
        async write(data, ctx) {
          // A line longer than LINE_MAX is refused at the write that makes it so, and every
          // later write of this open with it: nothing more is held for it.
          if (broken) throw broken;
          buf += data.toString('utf8');
          const end = buf.lastIndexOf('\n');
          const lines = end < 0 ? [] : buf.slice(0, end).split('\n');
          if (end >= 0) buf = buf.slice(end + 1);
          if (buf.length > LINE_MAX || lines.some((l) => l.length > LINE_MAX)) {
            buf = '';
            broken = E.inputTooLarge('line', LINE_MAX);
            throw broken;
          }
          if (lines.length) await go(lines, ctx);
        },
        async flush(ctx) {
          if (broken) return;
          const last = buf;
          buf = '';
          await go([last], ctx);
        },
      };
    },
  };
}

/** Runs each line on its own, in order: for commands that take one line (signal, ctl). */
export function eachLine(fn: (line: string, ctx: Ctx) => Promise<void>): LineRun {
  return async (lines, ctx) => {
    for (const line of lines) await fn(line, ctx);
  };
}

/**
 * A file where any write is the request (a channel's `close`): it runs once per open, at the
 * first write, whatever the bytes.
 */
export function trigger(name: string, run: (ctx: Ctx) => Promise<void>): FileSpec {
  return {
    name,
    mode: 'w',
    blocking: false,
    open(): OpenFile {
      let done = false;
      return {
        async write(_data, ctx) {
          if (done) return;
          done = true;
          await run(ctx);
        },
      };
    },
  };
}

