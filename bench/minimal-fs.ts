/**
 * The baseline file system for #1 and #2: fuse-native with nothing behind it, mounted with
 * direct_io (as the circuit mount is). Two files: `const`, a constant the size of a channel's
 * peek, and `zero`, SIZE zero bytes (and `zero.N`, N zero bytes). Run as `node dist/bench/minimal-fs.js DIR SIZE`: prints
 * "ready" once mounted, unmounts and exits on SIGTERM or SIGINT.
 */
import { constants } from 'node:os';

type Cb<T = void> = (err: number, value?: T) => void;
interface FuseLike {
  mount(cb: (err: Error | null) => void): void;
  unmount(cb: (err: Error | null) => void): void;
}
interface FuseCtor {
  new (mnt: string, ops: Record<string, unknown>, opts?: Record<string, unknown>): FuseLike & { _fuseOptions(): string };
}

// eslint-disable-next-line @typescript-eslint/no-var-requires
const Fuse = require('fuse-native') as FuseCtor;

/** fuse-native with direct_io appended to its -o options: no page cache, like the circuit mount. */
class DirectFuse extends Fuse {
  override _fuseOptions(): string {
    const base = super._fuseOptions();
    return (base ? `${base},` : '-o') + 'direct_io';
  }
}

/** The same length as a fresh channel's peek, so both mounts move the same bytes. */
export const CONST = Buffer.from('{"Cap":1000000,"Closed":false,"Aborted":false,"NumSend":0,"NumRecv":0}\n');

export function minimalFs(dir: string, zeroSize: number): FuseLike {
  const now = new Date();
  const stat = (mode: number, size: number) => ({ mode, size, uid: process.getuid?.() ?? 0, gid: process.getgid?.() ?? 0, nlink: 1, mtime: now, atime: now, ctime: now });
  const files: Record<string, number> = { '/const': CONST.length, '/zero': zeroSize };
  // `zero.N` is N zero bytes, for reads of any size from one mount.
  const sizeOf = (p: string): number | undefined => files[p] ?? (/^\/zero\.(\d+)$/.test(p) ? Number(p.slice(6)) : undefined);
  const ops = {
    getattr(p: string, cb: Cb<unknown>) {
      if (p === '/') return process.nextTick(cb, 0, stat(0o40755, 4096));
      const size = sizeOf(p);
      if (size === undefined) return process.nextTick(cb, -constants.errno.ENOENT);
      process.nextTick(cb, 0, stat(0o100444, size));
    },
    readdir(p: string, cb: (err: number, names?: string[]) => void) {
      if (p !== '/') return process.nextTick(cb, -constants.errno.ENOENT);
      process.nextTick(cb, 0, Object.keys(files).map((f) => f.slice(1)));
    },
    open(p: string, _flags: number, cb: Cb<number>) {
      if (sizeOf(p) === undefined) return process.nextTick(cb, -constants.errno.ENOENT);
      process.nextTick(cb, 0, 42);
    },
    read(p: string, _fd: number, buf: Buffer, len: number, pos: number, cb: (n: number) => void) {
      if (p === '/const') {
        if (pos >= CONST.length) return process.nextTick(cb, 0);
        return process.nextTick(cb, CONST.copy(buf, 0, pos, Math.min(CONST.length, pos + len)));
      }
      const n = Math.max(0, Math.min(len, (sizeOf(p) ?? 0) - pos));
      buf.fill(0, 0, n);
      process.nextTick(cb, n);
    },
    release(_p: string, _fd: number, cb: Cb) {
      process.nextTick(cb, 0);
    },
  };
  return new DirectFuse(dir, ops, { fsname: 'minimal' });
}

if (require.main === module) {
  const [dir, size] = process.argv.slice(2);
  if (!dir) {
    process.stderr.write('usage: minimal-fs DIR [SIZE]\n');
    process.exit(2);
  }
  const f = minimalFs(dir, Number(size ?? 0));
  f.mount((err) => {
    if (err) {
      process.stderr.write(`minimal-fs: mount ${dir}: ${err.message}\n`);
      process.exit(1);
    }
    process.stdout.write('ready\n');
  });
  const stop = () => f.unmount(() => process.exit(0));
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}
