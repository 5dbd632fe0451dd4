import { AppError } from '../../kit/errors';
import type { Ctx, FileSpec, OpenFile } from './control';

/**
 * A JSON command (a process's or container's cmd): the request runs at the write(2) that
 * completes a JSON object or array, and that write fails if it does; a value still incomplete at
 * close is refused there. Whitespace between values is ignored.
 */
export function jsonCommand(name: string, run: (value: unknown, ctx: Ctx) => Promise<void>, mode: 'w' | 'rw' = 'w'): FileSpec {
  return {
    name,
    mode,
    blocking: false,
    open(): OpenFile {
      let buf = '';
      return {
        async write(data, ctx) {
          buf += data.toString('utf8');
          for (;;) {
            const end = completeValue(buf);
            if (end < 0) return;
            const text = buf.slice(0, end);
            buf = buf.slice(end);
            await run(parse(text), ctx);
          }
        },
        async flush() {
          const rest = buf.trim();
          buf = '';
          if (rest !== '') throw badJson(`incomplete json: ${clip(rest)}`);
        },
      };
    },
  };
}

/**
 * The length of the complete top-level object or array at the start of text (after blanks), or
 * -1 when it is not complete yet. Anything but `{` or `[` first is refused at once.
 */
export function completeValue(text: string): number {
  let depth = 0;
  let inString = false;
  let escaped = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (inString) {
      if (escaped) escaped = false;
      else if (c === '\\') escaped = true;
      else if (c === '"') inString = false;
      continue;
    }
    if (depth === 0 && /\s/.test(c)) continue;
    if (depth === 0 && c !== '{' && c !== '[') throw badJson(`expected a json object: ${clip(text.trim())}`);
    if (c === '"') inString = true;
    else if (c === '{' || c === '[') depth++;
    else if (c === '}' || c === ']') {
      depth--;
      if (depth === 0) return i + 1;
    }
  }
  return -1;
}

function parse(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch (err) {
    throw badJson((err as Error).message);
  }
}

function clip(s: string): string {
  return s.length > 60 ? `${s.slice(0, 57)}...` : s;
}

function badJson(why: string): AppError {
  return new AppError('EINVAL', `command json not parsing: ${why}`);
}
