import fs = require('node:fs');
import path = require('node:path');

/**
 * The native add-on native/fdtake (native/fdtake/fdtake.c), which scripts/build-native.sh builds
 * when the package is installed: pidfd_getfd(2), to take a duplicate of another process's
 * descriptor, and a send(2) that never blocks. src/node/pipe-out.ts uses it to write into the
 * very stdout of a CLI on this host when that is a socket or a file. The same add-on carries
 * the output pump (native/fdtake/pump.c), which src/node/pump.ts loads through this.
 */
export interface Fdtake {
  /** A close-on-exec duplicate of descriptor fd of process pid, sharing its open file description; throws (EPERM, ESRCH, EBADF, ENOSYS...). */
  takeFd(pid: number, fd: number): number;
  /** send(2) with MSG_DONTWAIT | MSG_NOSIGNAL: the count sent; throws EAGAIN when the socket has no room. */
  sendNb(fd: number, b: Buffer, off: number, len: number): number;
  /** A close-on-exec duplicate of one of this process's descriptors (absent from an add-on built before it). */
  dupFd?(fd: number): number;
}

let loaded: Fdtake | null | undefined;

/**
 * The add-on, or undefined when it was not built (no compiler at install: see
 * scripts/build-native.sh), does not load, or CIRCUIT_NO_FDTAKE=1 is set in the daemon's
 * environment (to run without it); then the server writes only into pipes and terminals, and
 * the CLI writes other outputs itself. Looked up once, beside the compiled code (dist/src/node)
 * or the bundle (dist).
 */
export function fdtake(): Fdtake | undefined {
  if (loaded === undefined) loaded = load();
  return loaded ?? undefined;
}

function load(): Fdtake | null {
  if (process.env.CIRCUIT_NO_FDTAKE === '1') return null;
  for (const up of ['..', '../../..']) {
    const file = path.resolve(__dirname, up, 'native/fdtake/build/Release/fdtake.node');
    if (!fs.existsSync(file)) continue;
    try {
      const m = { exports: {} as Partial<Fdtake> };
      process.dlopen(m, file);
      if (typeof m.exports.takeFd === 'function' && typeof m.exports.sendNb === 'function') return m.exports as Fdtake;
    } catch {
      /* built for another node, or broken: as if not built */
    }
  }
  return null;
}
