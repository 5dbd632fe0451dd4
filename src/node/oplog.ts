import fs = require('node:fs');
import type { Origin } from '../api/types';

/**
 * The operations log: every operation, in execution order, as one JSON line with a sequence
 * number, time, origin, operation, path and result, appended to ops.log in the var folder. Make,
 * scrub and attach are also written to stderr in the original's timestamped form.
 *
 * Neither carries secrets or injections: a process's environment (`Env`, `env`) is logged by
 * names only (`NAME=…`), and a stderr line's control characters are escaped, so that a name
 * holding a newline (an anchor, a peer's id) cannot split a line or forge another one.
 */
export interface OpRecord {
  op: string;
  path?: string;
  origin?: Origin;
  args?: unknown;
  ok: boolean;
  error?: { code: string; message: string };
  result?: unknown;
}

/**
 * The daemon's stderr, until it goes away: a daemon outlives the terminal or pipe it was started
 * from, and once the reader is gone every write fails with EPIPE. Left alone, that error reached
 * the uncaught-exception handler, whose report was written to stderr again: a loop that kept a
 * core busy for good. Once stderr failed, its lines go to the operations log instead (op `say`),
 * starting with the one whose write failed.
 */
let stderrGone = false;
let lastLine: string | undefined;
const onStderr = new Set<OpLog>();
process.stderr.on('error', () => {
  if (stderrGone) return;
  stderrGone = true;
  for (const log of onStderr) log.append({ op: 'say', ok: true, result: `stderr is gone; its lines follow here. The last: ${lastLine ?? ''}` });
});
const toStderr = (l: string): void => {
  if (stderrGone) return;
  lastLine = l;
  process.stderr.write(l + '\n');
};

export class OpLog {
  #seq = 0;
  #fd: number | undefined;
  #pending: string[] = [];
  constructor(
    readonly file: string | undefined,
    readonly stderr: (line: string) => void = toStderr,
  ) {
    if (file) this.#fd = fs.openSync(file, 'a', 0o600);
    if (this.#fd !== undefined && stderr === toStderr) onStderr.add(this);
  }

  /**
   * Appends one record. Lines of one tick are written together at the end of the tick (one
   * write instead of one per operation, which cost a third of a channel message's time); a
   * crash loses at most that tick. close() and read() flush first.
   */
  append(r: OpRecord): void {
    if (this.#fd === undefined) return;
    // Written out field by field, in a fixed order (the fields and values JSON.stringify of
    // { seq, time, ...r } wrote, whose order followed the caller's): the spread object and a
    // fresh date string per line were most of a channel message's logging cost, and logging
    // was a tenth of the message (BENCHMARKS.md, #5).
    let line = `{"seq":${++this.#seq},"time":"${isoNow()}","op":${JSON.stringify(r.op)}`;
    if (r.path !== undefined) line += `,"path":${JSON.stringify(r.path)}`;
    if (r.origin !== undefined) line += `,"origin":${originJson(r.origin)}`;
    if (r.args !== undefined) line += `,"args":${JSON.stringify(redactEnv(r.args))}`;
    line += r.ok ? ',"ok":true' : ',"ok":false';
    if (r.error !== undefined) line += `,"error":${JSON.stringify(r.error)}`;
    if (r.result !== undefined) line += `,"result":${JSON.stringify(r.result)}`;
    this.#pending.push(line + '}');
    if (this.#pending.length === 1) setImmediate(() => this.flush());
  }

  flush(): void {
    if (this.#fd === undefined || this.#pending.length === 0) return;
    const text = this.#pending.join('\n') + '\n';
    this.#pending = [];
    try {
      fs.writeSync(this.#fd, text);
    } catch (e) {
      this.stderr(`${goTime()} cannot append to the operations log: ${(e as Error).message}`);
    }
  }

  /** One line on stderr in the original's form: `YYYY/MM/DD HH:MM:SS text`. */
  say(text: string): void {
    if (stderrGone && this.stderr === toStderr) this.append({ op: 'say', ok: true, result: text });
    else this.stderr(`${goTime()} ${oneLine(text)}`);
  }

  read(): Buffer {
    this.flush();
    return this.file ? fs.readFileSync(this.file) : Buffer.alloc(0);
  }

  close(): void {
    this.flush();
    onStderr.delete(this);
    if (this.#fd !== undefined) fs.closeSync(this.#fd);
    this.#fd = undefined;
  }
}

/**
 * An origin as JSON, kept per origin object: a connection's calls all carry the one its server
 * made for it (src/node/serve.ts), which nothing changes afterwards. (The mount makes one per
 * call; for those this is one lookup more than JSON.stringify alone.)
 */
const originJsons = new WeakMap<Origin, string>();
function originJson(o: Origin): string {
  let j = originJsons.get(o);
  if (j === undefined) originJsons.set(o, (j = JSON.stringify(o)));
  return j;
}

/**
 * The time as toISOString() writes it: the part up to the second is made anew only when the
 * second changed, the milliseconds appended (a Date and its string per line cost a busy log
 * ~4 µs a line).
 */
let isoSecond = -1;
let isoHead = '';
export function isoNow(now = Date.now()): string {
  const second = Math.floor(now / 1000);
  if (second !== isoSecond) {
    isoSecond = second;
    isoHead = new Date(second * 1000).toISOString().slice(0, 20); // 2026-12-01T16:03:28.
  }
  const ms = now - second * 1000;
  return isoHead + (ms < 10 ? '00' : ms < 100 ? '0' : '') + ms + 'Z';
}

function goTime(d = new Date()): string {
  const p = (n: number) => String(n).padStart(2, '0');
  return `${d.getFullYear()}/${p(d.getMonth() + 1)}/${p(d.getDate())} ${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
}

/**
 * Text made safe for one log line: control characters (C0, DEL, C1) and the Unicode line and
 * paragraph separators are escaped as \n, \r, \t or \xNN / \uNNNN. Names in lines are quoted
 * (q) besides, so this is the safety net for text that is not.
 */
export function oneLine(text: string): string {
  // eslint-disable-next-line no-control-regex
  return text.replace(/[\x00-\x1f\x7f-\x9f\u2028\u2029]/g, (c) => {
    if (c === '\n') return '\\n';
    if (c === '\r') return '\\r';
    if (c === '\t') return '\\t';
    const n = c.charCodeAt(0);
    return n > 0xff ? `\\u${n.toString(16).padStart(4, '0')}` : `\\x${n.toString(16).padStart(2, '0')}`;
  });
}

/** A quoted name for a log line: JSON string syntax (`"/X…/a b"`), so spaces and quotes are unambiguous. */
export function q(name: string): string {
  return JSON.stringify(name);
}

/** A copy of v in which every `Env`/`env` list of `NAME=VALUE` strings keeps the names only. */
export function redactEnv(v: unknown, depth = 0): unknown {
  if (depth > 8 || v === null || typeof v !== 'object' || Buffer.isBuffer(v) || isFlat(v)) return v;
  if (Array.isArray(v)) return v.map((x) => redactEnv(x, depth + 1));
  const out: Record<string, unknown> = {};
  for (const [k, x] of Object.entries(v as Record<string, unknown>)) {
    out[k] = /^env$/i.test(k) && Array.isArray(x) ? x.map((e) => (typeof e === 'string' ? e.replace(/=[\s\S]*$/, '=…') : '…')) : redactEnv(x, depth + 1);
  }
  return out;
}

/** An object (not an array) whose values are all strings, numbers, booleans or null: nothing in it to redact. */
function isFlat(v: object): boolean {
  if (Array.isArray(v)) return false;
  for (const k in v) {
    const x = (v as Record<string, unknown>)[k];
    if (x !== null && typeof x === 'object') return false;
    if (/^env$/i.test(k)) return false;
  }
  return true;
}
