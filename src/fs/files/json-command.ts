import { AppError, E } from '../../kit/errors';
import { SPEC_MAX } from '../../api/limits';
import type { Ctx, FileSpec, OpenFile } from './control';

/**
 * A JSON command (a process's or container's cmd): the request runs at the write(2) that
 * completes a JSON object or array, and that write fails if it does; a value still incomplete at
 * close is refused there. Whitespace between values is ignored.
 */
export function jsonCommand(name: string, run: (value: unknown, ctx: Ctx) => Promise<void>): FileSpec {
  return {
    name,
    mode: 'w',
    blocking: false,
    open(): OpenFile {
      let buf = '';
      // Set once what was written can no longer become JSON: every later write fails with it,
      // and close does not judge the rest again (the write already reported why).
      let broken: AppError | null = null;
      return {
        async write(data, ctx) {
          if (broken) throw broken;
          buf += data.toString('utf8');
          if (buf.length > SPEC_MAX) {
            buf = '';
            broken = E.inputTooLarge('json spec', SPEC_MAX);
            throw broken;
          }
          try {
            for (;;) {
              const end = completeValue(buf);
              if (end < 0) break;
              const text = buf.slice(0, end);
              buf = buf.slice(end);
              await run(parse(text), ctx);
            }
            const why = notJsonPrefix(buf);
            if (why !== null) throw badJson(why);
          } catch (err) {
            if (err instanceof AppError && err.message.startsWith(PREFIX)) {
              broken = err;
              buf = '';
            }
            throw err;
          }
        },
        async flush() {
          const rest = buf.trim();
          buf = '';
          if (broken) return;
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

/**
 * Why text (no complete value yet) can never become JSON, or null while it still can: `{bad`
 * fails at the write that made it invalid, not at close, where a shell's builtin echo would not
 * see the error. V8's parser says where it stopped: at the end of the text (or "end of JSON
 * input"), the text is a prefix still waiting for more; before the end, it is wrong already.
 */
export function notJsonPrefix(text: string): string | null {
  const t = text.trimEnd();
  if (t.trim() === '') return null;
  try {
    JSON.parse(t);
    return null;
  } catch (err) {
    const msg = (err as Error).message;
    if (/end of JSON input/i.test(msg)) return null;
    const at = /at position (\d+)/.exec(msg);
    if (at) return Number(at[1]) < t.length ? msg : null;
    // "Unexpected token 'x', "…" is not valid JSON": a character no JSON can continue with.
    return /^Unexpected token/.test(msg) ? msg.replace(/, ".*" is not valid JSON$/s, '') : null;
  }
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

const PREFIX = 'command json not parsing: ';

function badJson(why: string): AppError {
  return new AppError('EINVAL', `${PREFIX}${why}`);
}
