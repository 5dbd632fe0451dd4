import { constants } from 'os';
import { CircuitError, toCircuitError } from '../kit/errors';

/**
 * The only place where an error becomes a number for the kernel. Numbers come from the platform
 * (os.constants.errno), never a bare -1; anything without a known errno is logged and becomes EIO.
 */
const ERRNO: Record<string, number> = {
  // libuv's table (os.constants.errno) omits EHOSTDOWN, which FS.md promises for unreachable servers.
  EHOSTDOWN: process.platform === 'darwin' ? 64 : 112,
  ...(constants.errno as Record<string, number>),
};

/** The negative errno FUSE expects for err. */
export function toErrno(err: unknown, log?: (line: string) => void): number {
  if (!(err instanceof CircuitError) && !(err as NodeJS.ErrnoException)?.code) {
    log?.(`fs: unexpected failure ${String((err as Error)?.stack ?? err)}; answering EIO`);
  }
  const e = toCircuitError(err);
  const n = ERRNO[e.code];
  if (typeof n === 'number' && n > 0) return -n;
  log?.(`fs: no errno for ${e.code}: ${e.message}; answering EIO`);
  return -ERRNO.EIO;
}

/** A negative errno by name, for answers the FS layer gives itself (EISDIR, EACCES, …). */
export function errno(code: CircuitError['code']): number {
  return -ERRNO[code];
}

/** The readable form of a failure, for the element's `error` file and the log. */
export function describe(err: unknown): string {
  const e = toCircuitError(err);
  return `${e.code}: ${e.message}`;
}
