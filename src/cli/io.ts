import * as fs from 'node:fs';
import type { OutputReader } from '../api/types';
import { E } from '../kit/errors';
/** Small stdin/stdout helpers for the CLI. */
/**
 * Standard input, whole, up to max bytes: the read that crosses the bound fails at once with
 * EMSGSIZE (`what` names the input), so the rest is neither read nor held.
 */
export async function readAll(max: number, what: string, stream: NodeJS.ReadableStream = process.stdin): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let n = 0;
  for await (const c of stream) {
    const b = Buffer.isBuffer(c) ? c : Buffer.from(c as string);
    n += b.length;
    if (n > max) throw E.inputTooLarge(what, max);
    chunks.push(b);
  }
  return Buffer.concat(chunks);
}

/** Writes and waits for the stream to take it (back-pressure), failing if stdout is gone. */
export function writeOut(data: Buffer | string, out: NodeJS.WritableStream = process.stdout): Promise<void> {
  return new Promise((resolve, reject) => {
    const ok = out.write(data, (e) => (e ? reject(e) : undefined));
    if (ok) resolve();
    else out.once('drain', resolve);
  });
}

export function json(v: unknown): string {
  return JSON.stringify(v, null, '\t') + '\n';
}

/**
 * Copies a process's output stream to a file descriptor (stdout), exactly once: every write(2)
 * is acknowledged to the stream's home as soon as it returns, with the count the kernel took
 * (the descriptor is written without blocking, so a short write is counted as short), and every
 * read asks at the count delivered so far. SIGTERM, SIGINT and SIGHUP stop the copy between two
 * writes, give the stream back at exactly what was written, then end this process by the same
 * signal. The acknowledgement goes to the connection right after write(2) returns, in the same
 * turn (not with the turn's other frames), so only a SIGKILL landing between those two syscalls
 * can make the next reader see that write's bytes again. That gap is short but not rare to hit:
 * a killer woken by the write itself (the reader of the pipe on fd 1) is often scheduled into it.
 */
export async function copyStream(r: OutputReader, fd = 1): Promise<void> {
  let at = 0;
  let stopped: NodeJS.Signals | null = null;
  let reading: AbortController | null = null;
  const onSignal = (sig: NodeJS.Signals) => {
    stopped ??= sig;
    reading?.abort();
  };
  const sigs: NodeJS.Signals[] = ['SIGTERM', 'SIGINT', 'SIGHUP'];
  for (const s of sigs) process.on(s, onSignal);
  // A pipe on fd 1 is switched to non-blocking mode when process.stdout is first touched.
  if (fd === 1) void process.stdout.writable;
  try {
    for (;;) {
      if (stopped) break;
      reading = new AbortController();
      let b: Buffer | null;
      try {
        // 64 KiB a write: the most a SIGKILL between a write and its acknowledgement can repeat
        // (docs/cli.md, test/chaos/chaos.ts WRITE_MAX); the reads ahead keep the link busy anyway.
        b = await r.read(64 * 1024, { signal: reading.signal }, at);
      } catch (e) {
        if (stopped) break;
        throw e;
      }
      reading = null;
      if (!b) break;
      let off = 0;
      let idle = 1;
      while (off < b.length) {
        let n: number;
        try {
          n = fs.writeSync(fd, b, off, b.length - off);
        } catch (e) {
          if ((e as NodeJS.ErrnoException).code !== 'EAGAIN') throw e;
          if (stopped) break;
          await new Promise((res) => setTimeout(res, idle));
          idle = Math.min(idle * 2, 20);
          continue;
        }
        idle = 1;
        off += n;
        at += n;
        r.ack(at);
      }
    }
  } finally {
    for (const s of sigs) process.off(s, onSignal);
    await Promise.race([r.release(at).catch(() => {}), new Promise((res) => setTimeout(res, 1000))]);
  }
  if (stopped) process.kill(process.pid, stopped);
}
