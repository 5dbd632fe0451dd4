import type { Ops } from 'fuse-native';
import { constants } from 'os';
import { errno } from '../errno';
import type { Handles } from '../handles';
import { type OpsDeps, OpsContext, later } from './context';
import { access, create, ftruncate, open, release, truncate } from './files';
import { flush, read, write } from './io';
import { type DirectBinding, DirectReads } from './direct';
import { getattr, mkdir, readdir, readlink, rmdir } from './tree';

export type { Caller, OpsDeps } from './context';

/**
 * The FUSE ops: a thin adapter. Every op logs, resolves its path through the table (routes.ts),
 * acts on the Client, and replies, always asynchronously and after copying any buffer FUSE
 * lends. Blocking ops run under an AbortController that fires when their caller is interrupted
 * (interrupts.ts) or the mount goes away. The state they share is an OpsContext (context.ts);
 * the ops are in tree.ts (directories), files.ts (control files by path) and io.ts (open files).
 */

export interface FsOps {
  ops: Ops;
  handles: Handles;
  /** Answers every op in flight (EIO), releases every handle, refuses new element ops. */
  shutdown(): Promise<void>;
  /** Lets streams' reads come from their pipes on the FUSE thread (direct.ts). */
  readDirect(b: DirectBinding): void;
}

/** What the mount answers about extended attributes (see getxattr below). */
const NO_XATTRS = -constants.errno.ENOSYS;

export function createOps(deps: OpsDeps): FsOps {
  const c = new OpsContext(deps);
  const ops: Ops = {
    init: (cb) => later(cb, 0),
    getattr: getattr(c),
    readdir: readdir(c),
    readlink: readlink(c),
    mkdir: mkdir(c),
    rmdir: rmdir(c),
    open: open(c),
    create: create(c),
    read: read(c),
    write: write(c),
    flush: flush(c),
    release: release(c),
    truncate: truncate(c),
    ftruncate: ftruncate(c),
    utimens: (_path, _a, _m, cb) => later(cb, 0),
    access: access(c),
    // No extended attributes. ENOSYS (rather than an empty answer) makes the kernel stop asking
    // for the whole mount: it asks for security.capability before every write otherwise.
    getxattr: (_path, _name, _pos, cb) => later(cb, NO_XATTRS),
    listxattr: (_path, cb) => later(cb, NO_XATTRS),
    chmod: (_path, _m, cb) => later(cb, errno('EPERM')),
    chown: (_path, _u, _g, cb) => later(cb, errno('EPERM')),
    unlink: (_path, cb) => later(cb, errno('EPERM')),
    rename: (_s, _d, cb) => later(cb, errno('EPERM')),
    link: (_s, _d, cb) => later(cb, errno('EPERM')),
    symlink: (_s, _d, cb) => later(cb, errno('EPERM')),
    mknod: (_p, _m, _d, cb) => later(cb, errno('EPERM')),
  };
  return {
    ops,
    handles: c.handles,
    shutdown: () => c.shutdown(),
    readDirect: (b) => {
      c.direct = new DirectReads(b);
    },
  };
}
