import { fdtake } from './fdtake';

/**
 * A child's stdout and stderr read by the add-on's output pump (native/fdtake/pump.c) instead of
 * by Node: one native thread reads every such pipe and hands JavaScript what it read in pieces of
 * up to 256 KiB, where Node's own pipe reads come in pieces of a few KiB when the reader keeps up
 * with the writer, each one a trip through libuv and a stream on the daemon's one JavaScript
 * thread. The bytes, their order and the back-pressure are the same either way; only the size
 * of the pieces differs. Without the add-on (or with CIRCUIT_NO_PUMP=1 in the daemon's
 * environment) `outputPipe` gives undefined and the caller uses Node's pipes.
 */
export interface PumpNative {
  outputPipe(): [number, number];
  pumpInit(dispatch: (id: number, chunk: Buffer | null, errno?: number) => void): void;
  pumpAdd(fd: number): number;
  pumpPause(id: number): void;
  pumpResume(id: number): void;
  pumpStop(id: number): void;
  pumpLend?(id: number): number;
  pumpUnlend?(id: number): void;
  pumpPush?(id: number, sock: number, at: number, prefix?: Buffer): number;
  pumpPushStop?(id: number): void;
}

/** What a push from the pump's thread tells (native/fdtake/pump.c, "Pushing"); offsets are the caller's. */
export interface PushEvents {
  /** The reader acknowledged the bytes before at (told only up to where the pipe was lent). */
  acked(at: number): void;
  /** The pipe ended at `at`: everything was sent, and the socket shut for writing. */
  ended(at: number): void;
  /**
   * The push is over and the socket closed: the last acknowledgement, the offset up to which the
   * pipe was read, and the bytes from max(acked, where the pipe was lent) up to there, which are
   * the caller's again; undefined when the pump stopped (the stream is gone).
   */
  done(r: { acked: number; tail: number; keep: Buffer } | undefined): void;
}

const PUSH_ACK = 1;
const PUSH_ENDED = 2;
const PUSH_DONE = 3;

/** What a pumped pipe's reader gets: each piece, then the end (with the errno of a read that failed, else 0). */
export interface PumpHandler {
  data(chunk: Buffer): void;
  end(errno: number): void;
}

export interface PumpSource {
  pause(): void;
  resume(): void;
  /** Stops reading for good and closes the pipe; nothing more reaches the handler. */
  stop(): void;
  /**
   * The pump reads nothing more of the pipe until unlend, so that another reader may (the mount's
   * FUSE thread, see OutputBuffer.lender): the pipe's descriptor once everything the pump read
   * was handed over, HELD while some of it is still on its way (ask again), undefined when the
   * pipe cannot be lent (it ended).
   */
  lend(): number | typeof HELD | undefined;
  unlend(): void;
  /**
   * While the pipe is lent (nothing of it on its way): the pump's thread pushes `prefix`, then the
   * pipe, to the connected socket `sock` itself, the first byte at offset `at`, and keeps every
   * byte until the socket's reader acknowledges it (src/node/push.ts). True once it is on (the
   * socket is the pump's, which closes it); false when it cannot be (the socket stays the caller's).
   * Undefined without the add-on's push.
   */
  push?(sock: number, at: number, prefix: Buffer | undefined, h: PushEvents): boolean;
  /** Ends a push: PushEvents.done follows. */
  pushStop?(): void;
}

/** PumpSource.lend: the pump has stopped reading, and bytes it read are still on their way. */
export const HELD = 'held';

const handlers = new Map<number, PumpHandler>();
const pushes = new Map<number, PushEvents>();
let native: PumpNative | null | undefined;

function load(): PumpNative | null {
  if (process.env.CIRCUIT_NO_PUMP === '1') return null;
  const m = fdtake() as Partial<PumpNative> | undefined;
  if (!m || typeof m.pumpInit !== 'function' || typeof m.outputPipe !== 'function') return null;
  try {
    m.pumpInit(dispatch);
  } catch {
    return null;
  }
  return m as PumpNative;
}

function dispatch(id: number, chunk: Buffer | null, errno?: number, kind?: number, off?: number, tail?: number): void {
  try {
    if (kind) pushEvent(id, chunk, kind, off!, tail!);
    else pipeEvent(id, chunk, errno);
  } catch (e) {
    // A handler's bug must not become the add-on's pending exception.
    process.nextTick(() => { throw e; });
  }
}

function pipeEvent(id: number, chunk: Buffer | null, errno?: number): void {
  const h = handlers.get(id);
  if (!h) return; // stopped: what was already read goes nowhere, as after a stream's destroy()
  if (chunk) h.data(chunk);
  else {
    handlers.delete(id);
    h.end(errno ?? 0);
  }
}

function pushEvent(id: number, chunk: Buffer | null, kind: number, off: number, tail: number): void {
  const h = pushes.get(id);
  if (!h) return;
  if (kind === PUSH_ACK) h.acked(off);
  else if (kind === PUSH_ENDED) h.ended(off);
  else if (kind === PUSH_DONE) {
    pushes.delete(id);
    h.done({ acked: off, tail, keep: chunk ?? Buffer.alloc(0) });
  }
}

function pump(): PumpNative | null {
  if (native === undefined) native = load();
  return native;
}

/** Whether the output pump is here (native/fdtake built with it, and not turned off by CIRCUIT_NO_PUMP). */
export function havePump(): boolean {
  return pump() !== null;
}

/**
 * A pipe for a child's output, [read end, write end], both close-on-exec; the write end goes to
 * the child (spawn's stdio), and the parent closes it once the child is spawned. Undefined
 * without the pump, or when no pipe can be made now (the caller falls back to Node's pipes).
 */
export function outputPipe(): [number, number] | undefined {
  const p = pump();
  if (!p) return undefined;
  try {
    return p.outputPipe();
  } catch {
    return undefined;
  }
}

/** Starts pumping the read end of an `outputPipe` (which the pump now owns) into h. */
export function pumpOutput(fd: number, h: PumpHandler): PumpSource {
  const p = pump();
  if (!p) throw new Error('pumpOutput: the output pump is not available');
  const id = p.pumpAdd(fd);
  handlers.set(id, h);
  return {
    pause: () => p.pumpPause(id),
    resume: () => p.pumpResume(id),
    stop: () => {
      handlers.delete(id);
      p.pumpStop(id);
      const h = pushes.get(id);
      pushes.delete(id);
      h?.done(undefined);
    },
    lend: () => {
      const fd = p.pumpLend?.(id) ?? -1;
      return fd >= 0 ? fd : fd === -2 ? HELD : undefined;
    },
    unlend: () => p.pumpUnlend?.(id),
    push: p.pumpPush
      ? (sock, at, prefix, h) => {
          if (p.pumpPush!(id, sock, at, prefix) !== 0) return false;
          pushes.set(id, h);
          return true;
        }
      : undefined,
    pushStop: () => p.pumpPushStop?.(id),
  };
}
