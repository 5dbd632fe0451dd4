import * as fs from 'node:fs';
import type { Origin } from '../api/types';

/**
 * The operations log: every operation, in execution order, as one JSON line with a sequence
 * number, time, origin, operation, path and result, appended to ops.log in the var folder. Make,
 * scrub and attach are also written to stderr in the original's timestamped form.
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

export class OpLog {
  #seq = 0;
  #fd: number | undefined;
  #pending: string[] = [];
  constructor(
    readonly file: string | undefined,
    readonly stderr: (line: string) => void = (l) => process.stderr.write(l + '\n'),
  ) {
    if (file) this.#fd = fs.openSync(file, 'a', 0o600);
  }

  /**
   * Appends one record. Lines of one tick are written together at the end of the tick (one
   * write instead of one per operation, which cost a third of a channel message's time); a
   * crash loses at most that tick. close() and read() flush first.
   */
  append(r: OpRecord): void {
    if (this.#fd === undefined) return;
    this.#pending.push(JSON.stringify({ seq: ++this.#seq, time: new Date().toISOString(), ...r }));
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
    this.stderr(`${goTime()} ${text}`);
  }

  read(): Buffer {
    this.flush();
    return this.file ? fs.readFileSync(this.file) : Buffer.alloc(0);
  }

  close(): void {
    this.flush();
    if (this.#fd !== undefined) fs.closeSync(this.#fd);
    this.#fd = undefined;
  }
}

function goTime(d = new Date()): string {
  const p = (n: number) => String(n).padStart(2, '0');
  return `${d.getFullYear()}/${p(d.getMonth() + 1)}/${p(d.getDate())} ${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
}
