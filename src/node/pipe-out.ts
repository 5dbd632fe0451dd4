import * as fs from 'node:fs';
import * as os from 'node:os';
import type { CallOptions, PipeTarget } from '../api/types';
import type { Server } from './server';
import { copyOut, writeFd } from './copy-out';
import { SystemError } from '../kit/errors';
import { q } from './oplog';
import { withReadAhead } from './read-ahead';

/**
 * `circuit stdout` without a gap (issue 12): the server writes the stream into the CLI's own
 * stdout pipe, so that each write(2) and the count it adds to the stream's offset happen in one
 * process. When the CLI wrote the bytes itself and acknowledged them after, a SIGKILL between the
 * two made the next reader get that write again; now a kill of the CLI only closes its
 * connection, the copy stops between two writes, and the stream goes back at exactly what
 * reached the pipe.
 *
 * The server opens the pipe as `/proc/PID/fd/N` of the caller, which names the pipe itself (a
 * new open of it, like a FIFO's), and writes only if that is the very pipe the caller named by
 * device and inode. It does so only for a caller on this host: its control socket, or TCP from
 * one of this host's own addresses (a pipe's numbers mean nothing on another host). A caller the
 * server may serve can already run any process as the server's user, so writing into a pipe that
 * caller holds gives it nothing new. Anything else is 'refused' and the CLI copies the stream
 * itself as before. `circuit recv` writes its message the same way (recvToCaller).
 */
export async function copyToCaller(
  server: Server,
  path: string,
  which: 'stdout' | 'stderr',
  raw: unknown,
  caller: Caller,
  opts: CallOptions & { signal: AbortSignal },
): Promise<number | 'refused'> {
  const fd = callerPipe(raw, caller);
  if (fd === undefined) return 'refused';
  try {
    const lease = withReadAhead(await server.openOutput(path, which, opts), true);
    return await copyOut(lease, fd, opts.signal);
  } finally {
    fs.closeSync(fd);
  }
}

/**
 * `circuit recv` into a pipe, the same way: the message stays its home's while the receiver
 * waits; once taken, this server writes it into the caller's pipe whole (even if the caller is
 * killed meanwhile: the pipe is still there for its reader) and only then acknowledges it. A
 * CLI that received and acknowledged a message and then wrote it out could be killed between
 * the two and lose it. If the pipe's reader is gone before every byte is in, the message goes
 * back first in its channel and the call fails with EPIPE. Resolves with the message's length.
 */
export async function recvToCaller(server: Server, path: string, raw: unknown, caller: Caller, opts: CallOptions & { signal: AbortSignal }): Promise<number | 'refused'> {
  const fd = callerPipe(raw, caller);
  if (fd === undefined) return 'refused';
  try {
    const r = await server.recvUnacked(path, opts);
    let n = 0;
    try {
      await writeFd(fd, r.msg, undefined, (k) => (n += k));
    } catch (e) {
      server.oplog.say(`the reader of a receiver's pipe for ${q(path)} left after ${n} of ${r.msg.length} bytes: the message goes back`);
      await r.giveBack();
      throw new SystemError('EPIPE', `the reader of the output went away: ${(e as Error).message}`, { cause: e });
    }
    await r.ack();
    return r.msg.length;
  } finally {
    fs.closeSync(fd);
  }
}

/** Who called: over the control socket, or over TCP from `remote` ("address:port"). */
export interface Caller {
  local: boolean;
  remote: string;
}

/** The caller's pipe named by raw, opened for writing, or undefined (see openPipe). */
function callerPipe(raw: unknown, caller: Caller): number | undefined {
  const target = pipeTarget(raw);
  if (!target || !(caller.local || sameHost(caller.remote))) return undefined;
  return openPipe(target);
}

/** The target as sent, checked; undefined when malformed. */
function pipeTarget(raw: unknown): PipeTarget | undefined {
  const t = raw as Partial<PipeTarget> | null;
  if (!t || typeof t !== 'object') return undefined;
  const { pid, fd, dev, ino } = t;
  if (!Number.isSafeInteger(pid) || pid! <= 0 || !Number.isSafeInteger(fd) || fd! < 0) return undefined;
  if (typeof dev !== 'string' || typeof ino !== 'string' || !/^\d{1,20}$/.test(dev) || !/^\d{1,20}$/.test(ino)) return undefined;
  return { pid: pid!, fd: fd!, dev, ino };
}

/**
 * The caller's pipe opened for writing without blocking, or undefined: no such process or
 * descriptor, not ours to open, no reader left (ENXIO), not a pipe, or another pipe than named.
 */
function openPipe(t: PipeTarget): number | undefined {
  let fd: number;
  try {
    fd = fs.openSync(`/proc/${t.pid}/fd/${t.fd}`, fs.constants.O_WRONLY | fs.constants.O_NONBLOCK | fs.constants.O_NOCTTY);
  } catch {
    return undefined;
  }
  try {
    const st = fs.fstatSync(fd, { bigint: true });
    if (st.isFIFO() && String(st.dev) === t.dev && String(st.ino) === t.ino) return fd;
  } catch {
    /* refused below */
  }
  fs.closeSync(fd);
  return undefined;
}

/** Whether a TCP peer ("address:port") is this host: a loopback address or one of its own. */
export function sameHost(remote: string): boolean {
  const addr = remote.slice(0, remote.lastIndexOf(':')).replace(/^::ffff:/, '');
  if (addr === '::1' || /^127\./.test(addr)) return true;
  return Object.values(os.networkInterfaces()).some((list) => list?.some((i) => i.address === addr));
}
