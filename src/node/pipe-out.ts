import fs = require('node:fs');
import os = require('node:os');
import type { CallOptions, PipeTarget } from '../api/types';
import type { Server } from './server';
import { copyOut, writeFd, writeNow, type WriteOnce } from './copy-out';
import { fdtake } from './fdtake';
import { pidNamespace } from '../kit/pid';
import { SystemError } from '../kit/errors';
import { q } from './oplog';
import { withReadAhead } from './read-ahead';

/**
 * `circuit stdout` without a gap (issue 12): the server writes the stream into the CLI's own
 * stdout, so that each write(2) and the count it adds to the stream's offset happen in one
 * process. When the CLI wrote the bytes itself and acknowledged them after, a SIGKILL between the
 * two made the next reader get that write again; now a kill of the CLI only closes its
 * connection, the copy stops between two writes, and the stream goes back at exactly what
 * reached the output.
 *
 * How the server gets hold of that output depends on what it is (openOut). It does so only for a
 * caller on this host: its control socket, or TCP from one of this host's own addresses (a
 * descriptor's numbers mean nothing on another host), and writes only into the very file the
 * caller named by device and inode. A caller the server may serve can already run any process
 * as the server's user, so writing into a descriptor that caller holds gives it nothing new.
 * Anything else is 'refused' and the CLI copies the stream itself as before. `circuit recv`
 * writes its message the same way (recvToCaller).
 */
export async function copyToCaller(
  server: Server,
  path: string,
  which: 'stdout' | 'stderr',
  raw: unknown,
  caller: Caller,
  opts: CallOptions & { signal: AbortSignal },
): Promise<number | 'refused'> {
  const out = await callerOut(raw, caller);
  if (!out) return 'refused';
  try {
    const lease = withReadAhead(await server.openOutput(path, which, opts), true);
    return await copyOut(lease, out.fd, opts.signal, out.write);
  } finally {
    await close(out.fd);
  }
}

/**
 * `circuit recv` into the caller's stdout, the same way: the message stays its home's while the
 * receiver waits; once taken, this server has its home forget it (confirmed, over a new
 * connection if need be) and then writes it into the caller's output whole, even if the caller
 * is killed meanwhile: the output is still there for its reader. A CLI that acknowledged a
 * message and then wrote it out itself could be killed between the two and lose it. If the
 * output's reader is gone before every byte is in (EPIPE), the message goes back first in its
 * channel and the call fails with EPIPE. Resolves with the message's length.
 */
export async function recvToCaller(server: Server, path: string, raw: unknown, caller: Caller, opts: CallOptions & { signal: AbortSignal }): Promise<number | 'refused'> {
  const out = await callerOut(raw, caller);
  if (!out) return 'refused';
  try {
    const r = await server.recvUnacked(path, opts);
    if (opts.signal.aborted) {
      // the call ended (its caller gone, or it gave up: e.g. this server was stopped meanwhile)
      // as the message came: it goes back rather than out after a recv that failed
      await r.giveBack();
      throw new SystemError('ECANCELED', 'the receiver went away before its message could be written');
    }
    // Acknowledged before it is written: the acknowledgement can be confirmed again over a new
    // connection (src/node/takes.ts), the write cannot be taken back. So a connection to the
    // home lost on the way makes no duplicate: if the home gave the message back first, this
    // fails (ENOENT) and nothing is written. A SIGKILL of the CLI does not stop the write: this
    // server holds its output. Only this server dying between the two would lose it.
    await r.ack();
    let n = 0;
    try {
      await writeFd(out.fd, r.msg, undefined, (k) => (n += k), out.write);
    } catch (e) {
      server.oplog.say(`the reader of a receiver's output for ${q(path)} left after ${n} of ${r.msg.length} bytes: the message goes back`);
      await server.unrecv(path, r.msg);
      throw new SystemError('EPIPE', `the reader of the output went away: ${(e as Error).message}`, { cause: e });
    }
    return r.msg.length;
  } finally {
    await close(out.fd);
  }
}

/** Who called: over the control socket, or over TCP from `remote` ("address:port"). */
export interface Caller {
  local: boolean;
  remote: string;
}

/** The caller's output, held by this server: a descriptor and how to write into it. */
interface CallerOut {
  fd: number;
  write: WriteOnce;
}

/** The caller's output named by raw, ready for writing, or undefined (see openOut). */
async function callerOut(raw: unknown, caller: Caller): Promise<CallerOut | undefined> {
  const target = pipeTarget(raw);
  if (!target || !(caller.local || sameHost(caller.remote))) return undefined;
  return openOut(target);
}

/** The target as sent, checked; undefined when malformed. */
function pipeTarget(raw: unknown): PipeTarget | undefined {
  const t = raw as Partial<PipeTarget> | null;
  if (!t || typeof t !== 'object') return undefined;
  const { pid, fd, dev, ino, pidns } = t;
  if (!Number.isSafeInteger(pid) || pid! <= 0 || pid! > 0x7fffffff || !Number.isSafeInteger(fd) || fd! < 0 || fd! > 0x7fffffff) return undefined;
  if (typeof dev !== 'string' || typeof ino !== 'string' || !/^\d{1,20}$/.test(dev) || !/^\d{1,20}$/.test(ino)) return undefined;
  if (pidns != null && (typeof pidns !== 'string' || pidns.length > 64)) return undefined;
  return { pid: pid!, fd: fd!, dev, ino, pidns: pidns ?? undefined };
}

/** The kinds of output a server writes into: a pipe, a terminal, a socket, a regular file. */
type Kind = 'pipe' | 'terminal' | 'socket' | 'file';

/**
 * The caller's descriptor, ready for writing, or undefined: no such process or descriptor, not
 * ours to reach, no reader left, another file than named, a kind not handled, or no add-on.
 *
 * - A pipe or a terminal: opened anew as `/proc/PID/fd/N`, which names the pipe or the
 *   terminal itself, in non-blocking mode. That open file description is this server's
 *   alone, so its O_NONBLOCK touches nobody else (a terminal's description is shared with the
 *   user's shell, which must not find it non-blocking afterwards), and neither has an offset to
 *   share. A write that finds no room waits without blocking the event loop (writeFd), and a
 *   stop ends that wait at once.
 * - A socket (a socket pair, as node and many supervisors give a child) cannot be opened that
 *   way (ENXIO), and a regular file opened anew would have an offset of its own (wrong for
 *   `> out.txt` followed by more writes). For them the server takes a duplicate of the caller's
 *   very descriptor with pidfd_getfd(2) (native/fdtake), which shares the caller's open file
 *   description, offset and flags; nothing is changed on it. The kernel allows that only to a
 *   process that may ptrace the caller (root, or the caller's own user where Yama's
 *   ptrace_scope does not forbid it); otherwise, or without the add-on, it is refused. A socket
 *   is written with send(MSG_DONTWAIT), which cannot block whatever the shared O_NONBLOCK says.
 *   A file is written with write(2) at the shared offset on libuv's threadpool (O_NONBLOCK
 *   means nothing for a file): a write that blocks (a hung network file system) holds one pool
 *   thread, and a stop takes effect when it returns.
 *
 * Nothing here touches the caller's file from the event loop's thread: its stat, open, fstat and
 * close run on the threadpool too. The file may be on this daemon's own mount (`circuit stdout P
 * > MNT/…/send`), whose requests this thread answers: a stat of it made here would wait for
 * itself for good.
 */
async function openOut(t: PipeTarget): Promise<CallerOut | undefined> {
  // The pid is the caller's in its pid namespace: one of another (a CLI in a container sharing
  // this host's network) names some other process here. Only a pipe is taken from a caller that
  // does not say (a CLI older than the namespace field), as before: a pipe is the same pipe
  // whoever holds it, while a file's offset is its holder's own.
  if (t.pidns !== undefined && t.pidns !== pidNamespace()) return undefined;
  const kind = await kindOf(t);
  if (t.pidns === undefined && kind !== 'pipe') return undefined;
  const taken = kind === 'socket' || kind === 'file';
  const ft = taken ? fdtake() : undefined;
  if (!kind || (taken && !ft)) return undefined;
  let fd: number;
  try {
    // pidfd_getfd only takes a reference to the open file: no request to its file system
    fd = ft ? ft.takeFd(t.pid, t.fd) : await openProc(`/proc/${t.pid}/fd/${t.fd}`);
  } catch {
    return undefined; // gone, EPERM, ENXIO (no reader left), ENOSYS (a kernel before 5.6)
  }
  try {
    // the very file named, checked again on what we hold (the caller may have replaced fd N)
    const st = await new Promise<fs.BigIntStats>((resolve, reject) => fs.fstat(fd, { bigint: true }, (e, st) => (e ? reject(e) : resolve(st))));
    if (String(st.dev) === t.dev && String(st.ino) === t.ino && kindOfStat(st) === kind) {
      return { fd, write: kind === 'socket' ? ft!.sendNb : kind === 'file' ? writeInPool : writeNow };
    }
  } catch {
    /* refused below */
  }
  await close(fd);
  return undefined;
}

/** The kind of the caller's descriptor, if it is the file named: a stat of its /proc link, which opens nothing. */
async function kindOf(t: PipeTarget): Promise<Kind | undefined> {
  try {
    const st = await fs.promises.stat(`/proc/${t.pid}/fd/${t.fd}`, { bigint: true });
    return String(st.dev) === t.dev && String(st.ino) === t.ino ? kindOfStat(st) : undefined;
  } catch {
    return undefined;
  }
}

/** A pipe or terminal opened anew for writing, non-blocking, on the threadpool. */
function openProc(link: string): Promise<number> {
  const flags = fs.constants.O_WRONLY | fs.constants.O_NONBLOCK | fs.constants.O_NOCTTY;
  return new Promise((resolve, reject) => fs.open(link, flags, (e, fd) => (e ? reject(e) : resolve(fd))));
}

/** close(2) on the threadpool (a file on a FUSE mount gets a flush request), never failing. */
function close(fd: number): Promise<void> {
  return new Promise((resolve) => fs.close(fd, () => resolve()));
}

function kindOfStat(st: fs.BigIntStats): Kind | undefined {
  if (st.isFIFO()) return 'pipe';
  if (st.isCharacterDevice()) return isTerminal(st.rdev) ? 'terminal' : undefined;
  if (st.isSocket()) return 'socket';
  if (st.isFile()) return 'file';
  return undefined;
}

/**
 * Whether a character device is a terminal, by its major number (Linux's devices.txt: 4 the
 * virtual consoles and serial ports, 5 /dev/tty and /dev/console, 136-143 the pseudo-terminals).
 * Other devices are not opened at all (an open may do something, e.g. rewind a tape, and a
 * device may ignore O_NONBLOCK and block the event loop): the CLI writes into them itself.
 */
function isTerminal(rdev: bigint): boolean {
  const major = Number(((rdev >> 8n) & 0xfffn) | ((rdev >> 32n) & ~0xfffn));
  return major === 4 || major === 5 || (major >= 136 && major <= 143);
}

/** write(2) at the descriptor's own offset (position null), on libuv's threadpool: see openOut. */
const writeInPool: WriteOnce = (fd, b, off, len) =>
  new Promise((resolve, reject) => fs.write(fd, b, off, len, null, (e, n) => (e ? reject(e) : resolve(n))));

/** Whether a TCP peer ("address:port") is this host: a loopback address or one of its own. */
export function sameHost(remote: string): boolean {
  const addr = remote.slice(0, remote.lastIndexOf(':')).replace(/^::ffff:/, '');
  if (addr === '::1' || /^127\./.test(addr)) return true;
  return Object.values(os.networkInterfaces()).some((list) => list?.some((i) => i.address === addr));
}
