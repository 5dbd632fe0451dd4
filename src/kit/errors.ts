/**
 * One error class for the whole project. Every failure carries a POSIX-named code (the FS maps
 * it to an errno in one place, src/fs/errno.ts) and a short lower-case message (the CLI prints
 * it after `circuit: `). Two subclasses tell the two kinds apart, as the original did:
 * application errors (busy anchor, closed channel, bad input) are answers; system errors
 * (unreachable server, broken connection, deadline) mean the call may not have reached its home.
 */
export type ErrorCode =
  | 'ENOENT' | 'EEXIST' | 'EBUSY' | 'EINVAL' | 'EPIPE' | 'ECANCELED' | 'EHOSTDOWN' | 'EIO'
  | 'EACCES' | 'EPERM' | 'ENOTSUP' | 'ETIMEDOUT' | 'ECONNRESET' | 'EMSGSIZE' | 'ESRCH'
  | 'ENOTDIR' | 'EISDIR' | 'EINTR' | 'EAGAIN' | 'ENOEXEC' | 'EPROTO' | 'ENOTEMPTY' | 'EBADF';

/** Every code, for the test that checks each has an errno and a line in docs/errors.md. */
export const ERROR_CODES: readonly ErrorCode[] = [
  'ENOENT', 'EEXIST', 'EBUSY', 'EINVAL', 'EPIPE', 'ECANCELED', 'EHOSTDOWN', 'EIO', 'EACCES',
  'EPERM', 'ENOTSUP', 'ETIMEDOUT', 'ECONNRESET', 'EMSGSIZE', 'ESRCH', 'ENOTDIR', 'EISDIR',
  'EINTR', 'EAGAIN', 'ENOEXEC', 'EPROTO', 'ENOTEMPTY', 'EBADF',
];

export class CircuitError extends Error {
  readonly code: ErrorCode;
  /** True for system errors: the call may not have reached the element's home. */
  readonly system: boolean;
  constructor(code: ErrorCode, message: string, options?: { cause?: unknown; system?: boolean }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.system = options?.system ?? false;
    this.name = this.system ? 'SystemError' : 'AppError';
  }
  /** The form that travels on the wire; decoded once by fromWire at the boundary. */
  toWire(): WireError {
    return { code: this.code, message: this.message, system: this.system };
  }
}

/** An answer from the element's home: busy anchor, closed channel, bad input. */
export class AppError extends CircuitError {
  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(code, message, { ...options, system: false });
  }
}

/** The call failed on the way: unreachable server, broken connection, missed deadline. */
export class SystemError extends CircuitError {
  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(code, message, { ...options, system: true });
  }
}

export interface WireError { code: string; message: string; system?: boolean }

export function fromWire(w: WireError): CircuitError {
  const code = (ERROR_CODES as readonly string[]).includes(w.code) ? (w.code as ErrorCode) : 'EIO';
  return w.system ? new SystemError(code, String(w.message)) : new AppError(code, String(w.message));
}

/** Turns anything thrown into a CircuitError; unknown failures become EIO with their text. */
export function toCircuitError(err: unknown): CircuitError {
  if (err instanceof CircuitError) return err;
  const e = err as NodeJS.ErrnoException;
  if (e && typeof e.code === 'string' && (ERROR_CODES as readonly string[]).includes(e.code)) {
    return new AppError(e.code as ErrorCode, e.message, { cause: err });
  }
  return new AppError('EIO', e && e.message ? e.message : String(err), { cause: err });
}

/**
 * The table of application errors, so call sites never write ad-hoc texts. Texts follow the
 * original's where it had one (docs/changes.md lists where they differ): scripts match them.
 */
export const E = {
  busyAnchor: () => new AppError('EBUSY', 'anchor already has an element'),
  outsideServers: () => new AppError('EPERM', 'cannot create elements outside of servers'),
  noElement: (path: string) => new AppError('ENOENT', `no element at ${path}`),
  notKind: (what: string) => new AppError('EINVAL', what),
  unknownServer: (id: string) =>
    new SystemError('EHOSTDOWN', `error, likely due to missing server or misspelled anchor: ${id} is not in this server's view`),
  chanClosed: () => new AppError('EPIPE', 'channel closed'),
  chanAlreadyClosed: () => new AppError('EPIPE', 'channel already closed'),
  chanAborted: () => new AppError('ECANCELED', 'channel aborted'),
  aborted: () => new AppError('ECANCELED', 'aborted'),
  interrupted: () => new AppError('EINTR', 'interrupted'),
  badCap: () => new AppError('EINVAL', 'capacity must be a non-negative integer'),
  capInUse: () => new AppError('EBUSY', 'capacity can only change before the channel is first used'),
  tooLarge: (n: number, max: number) => new AppError('EMSGSIZE', `message of ${n} bytes exceeds the maximum of ${max} bytes`),
  /** An input refused as it grows past its bound, before the rest of it is read. */
  inputTooLarge: (what: string, max: number) => new AppError('EMSGSIZE', `${what} exceeds the maximum of ${max} bytes`),
  badSignal: (s: string) => new AppError('EINVAL', `signal name not recognized: ${JSON.stringify(s)}`),
  noProcess: () => new AppError('ESRCH', 'no running process to signal'),
  notStarted: () => new AppError('ESRCH', 'the process has not been started (write its cmd first)'),
  finished: () => new AppError('ESRCH', 'process already finished'),
  procRunning: () => new AppError('EBUSY', 'process is running; signal it first'),
  procStarted: () => new AppError('EBUSY', 'process already started'),
  readerBusy: (which: string) => new AppError('EBUSY', `${which} already has a reader`),
  stdinClosed: () => new AppError('EPIPE', 'stdin is closed'),
  badCmd: (why: string) => new AppError('EINVAL', `command json not parsing: ${why}`),
  badPath: (why: string) => new AppError('EINVAL', why),
  notSupported: (what: string) => new AppError('ENOTSUP', what),
  /** A peer that does not know the operation (an older server): callers fall back on that. */
  unknownOperation: (op: string) => new AppError('ENOTSUP', `unknown operation ${op}`),
  wouldBlock: (what: string) => new AppError('EAGAIN', what),
} as const;

/** Whether e is E.unknownOperation as it comes back over the wire (a peer older than the call). */
export function isUnknownOperation(e: unknown): boolean {
  return (e as { code?: string } | null)?.code === 'ENOTSUP' && /unknown operation/.test((e as Error).message);
}
