import { CircuitError } from '../../kit/errors';
import { type Op, type OpsContext, later } from './context';

/**
 * The ops on control files by path: open, create (refused), release, truncate, access. Reading
 * and writing an open file are in io.ts.
 */

export const open = (c: OpsContext): Op<'open'> => (path, flags, cb) => {
  const caller = c.caller();
  c.answer('open', path, caller, () => c.openHandle(path, flags, caller), cb, true);
};

export const create = (c: OpsContext): Op<'create'> => (path, _mode, cb) => {
  // Only reached when lookup found no such file: control files cannot be created.
  c.answer('create', path, c.caller(), () => {
    throw new CircuitError(c.resolve(path).type === 'file' ? 'ENOENT' : 'EPERM', `cannot create ${path}`);
  }, cb);
};

/** `path` is '' for a release the binding answered itself (mount.ts, noteReleases): the open's path then. */
export const release = (c: OpsContext): Op<'release'> => (path, fd, cb) => {
  c.direct?.take(fd);
  const h = c.handles.delete(fd);
  later(cb, 0); // nobody waits for release; give back leases in the background
  if (h?.file.release) void c.releaseHandle(h, path || h.path, c.caller());
};

export const truncate = (c: OpsContext): Op<'truncate'> => (path, size, cb) => {
  // open(O_TRUNC) reaches us as open, then truncate by path (the kernel drops the handle
  // for it): it belongs to the fresh handles the same caller just opened at that path.
  const caller = c.caller();
  c.answer('truncate', path, caller, () => {
    c.fileNode(path);
    for (const h of c.handles.all()) {
      if (h.path === path && h.fresh && (!caller || h.pid === caller.pid)) h.file.truncate?.(size);
    }
  }, cb, true);
};

export const ftruncate = (c: OpsContext): Op<'ftruncate'> => (_path, fd, size, cb) => {
  const h = c.handles.get(fd);
  if (h?.fresh) h.file.truncate?.(size);
  later(cb, 0);
};

export const access = (c: OpsContext): Op<'access'> => (path, mode, cb) => {
  c.answer('access', path, null, () => {
    const n = c.resolve(path);
    if (n.type !== 'file') return;
    if ((mode & 2 && !n.file.mode.includes('w')) || (mode & 4 && !n.file.mode.includes('r')) || mode & 1) {
      throw new CircuitError('EACCES', `${path}: permission denied`);
    }
  }, cb, true);
};
