import fs = require('node:fs');
import { isatty } from 'node:tty';
import type { Client, OutputReader, PipeTarget, Received } from '../api/types';
import { copyOut } from '../node/copy-out';
import { pidNamespace } from '../kit/pid';
import { ACK_AGAIN_BACKOFF, ACK_AGAIN_MS } from '../api/limits';
import { retryFor } from '../kit/backoff';
import { E, isUnknownOperation, toCircuitError } from '../kit/errors';
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
 * Copies a process's output stream to a file descriptor (stdout), exactly once, when this
 * process writes it itself (src/node/copy-out.ts): every write(2) is acknowledged to the
 * stream's home as soon as it returns. SIGTERM, SIGINT and SIGHUP stop the copy between two
 * writes, give the stream back at exactly what was written, then end this process by the same
 * signal. The acknowledgement goes to the connection right after write(2) returns, in the same
 * turn, so only a SIGKILL landing between those two syscalls can make the next reader see that
 * write's bytes again: the reason `circuit stdout` lets the server write into its stdout whenever
 * it can (copyByServer).
 */
export async function copyStream(r: OutputReader, fd = 1): Promise<void> {
  const stop = new AbortController();
  let sig: NodeJS.Signals | undefined;
  const onSignal = (s: NodeJS.Signals) => {
    sig ??= s;
    stop.abort();
  };
  const sigs: NodeJS.Signals[] = ['SIGTERM', 'SIGINT', 'SIGHUP'];
  for (const s of sigs) process.on(s, onSignal);
  // A pipe on fd 1 is switched to non-blocking mode when process.stdout is first touched.
  if (fd === 1) void process.stdout.writable;
  try {
    await copyOut(r, fd, stop.signal);
  } finally {
    for (const s of sigs) process.off(s, onSignal);
  }
  if (sig) process.kill(process.pid, sig);
}

/**
 * Asks the server this CLI dialled to write the stream into this process's stdout itself, when
 * the server runs on this host (src/node/pipe-out.ts): the server then writes and counts each
 * write in one process, so no kill of this one, SIGKILL included, can make the next reader get a
 * byte twice. A signal needs no handler: it ends this process, its connection closes, and the
 * server stops between two writes and gives the stream back at what it wrote. False when the
 * server cannot (it is on another host; stdout is a socket or a file and the server lacks the
 * add-on or the permission to take this process's descriptor; an older server, which takes only
 * pipes): then the CLI copies it itself.
 */
export async function copyByServer(c: Client, path: string, which: 'stdout' | 'stderr'): Promise<boolean> {
  const target = c.copyOutput && stdoutTarget();
  return !!target && byServer(() => c.copyOutput!(path, which, target));
}

/**
 * `circuit recv` the same way: the server has the message's home forget it, then writes it into
 * this process's stdout itself, so no kill of this process can fall between the acknowledgement
 * and the write and lose it. False as for copyByServer: then the CLI writes it itself.
 */
export async function recvByServer(c: Client, path: string): Promise<boolean> {
  const target = c.recvTo && stdoutTarget();
  return !!target && byServer(() => c.recvTo!(path, target));
}

/**
 * This process's stdout, named for a server on this host: a pipe, a socket, a regular file or a
 * terminal; the server finds out which from the same numbers. Undefined when stdout is closed or
 * something else (e.g. /dev/null), which the CLI then writes itself.
 */
function stdoutTarget(): PipeTarget | undefined {
  try {
    const st = fs.fstatSync(1, { bigint: true });
    const fits = st.isFIFO() || st.isSocket() || st.isFile() || (st.isCharacterDevice() && isatty(1));
    return fits ? { pid: process.pid, fd: 1, dev: String(st.dev), ino: String(st.ino), pidns: pidNamespace() } : undefined;
  } catch {
    return undefined;
  }
}

/** Whether the server did it: false when it refused, or is too old to know the operation. */
async function byServer(call: () => Promise<number | 'refused'>): Promise<boolean> {
  try {
    return (await call()) !== 'refused';
  } catch (e) {
    if (isUnknownOperation(e)) return false;
    throw e;
  }
}

/**
 * Whether a dial failed because no server is there to ask: nobody listens (ECONNREFUSED, a
 * socket file gone) or another server answers (EACCES: a restart, a new identity). The server
 * that handed the message out is gone with what it knew, so asking again cannot tell; a
 * partition (a dial that times out or finds no route) is worth waiting out instead.
 */
function noServer(e: unknown): boolean {
  for (let x = e as { code?: string; cause?: unknown } | undefined, i = 0; x && i < 4; x = x.cause as typeof x, i++) {
    if (x.code === 'ECONNREFUSED' || x.code === 'ENOENT' || x.code === 'EACCES') return true;
  }
  return false;
}

/**
 * Acknowledges a received message before it is written out. If the connection ends while the
 * acknowledgement is on its way (a partition, a server restarting), nobody can tell whether its
 * home forgot the message: dial again and ask by the message's id until the server says
 * (src/node/takes.ts). Resolves when this receiver may write it out; rejects when the message
 * went back to its channel (ENOENT) or the server could not be asked within ACK_AGAIN_MS.
 */
export async function ackSurely(c: Client, r: Received, dial: () => Promise<Client & { ackTaken(id: number): Promise<void>; hangUp(): Promise<void> }>): Promise<void> {
  try {
    await r.ack();
  } catch (first) {
    const id = r.id;
    if (id === undefined || !sessionClosed(c)) throw first;
    await retryFor(ACK_AGAIN_MS, ACK_AGAIN_BACKOFF, first, async () => {
      let again;
      try {
        again = await dial();
        await again.ackTaken(id);
        return true;
      } catch (e) {
        if (isUnknownOperation(e)) throw first;
        if (again && !sessionClosed(again)) throw toCircuitError(e); // the server's answer
        if (!again && noServer(e)) throw first;
        return false; // lost on the way: a partition, worth waiting out
      } finally {
        void again?.hangUp().catch(() => {});
      }
    });
  }
}

/** Whether a client's connection has ended (a RemoteClient's session; false for others). */
function sessionClosed(c: Client): boolean {
  return !!(c as { session?: { isClosed?: boolean } }).session?.isClosed;
}
