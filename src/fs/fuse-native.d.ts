/**
 * The part of fuse-native (no typings of its own) that src/fs uses. Callbacks follow its
 * contract: cb(0 | -errno, value); read and write answer cb(bytes | -errno).
 */
declare module 'fuse-native' {
  type Cb<T = void> = (err: number, value?: T) => void;
  export interface Stat {
    mode: number; uid: number; gid: number; size: number; nlink?: number;
    mtime: Date | number; atime: Date | number; ctime: Date | number;
  }
  export interface Ops {
    init?(cb: Cb): void;
    access?(path: string, mode: number, cb: Cb): void;
    getattr?(path: string, cb: Cb<Stat>): void;
    readdir?(path: string, cb: (err: number, names?: string[], stats?: Stat[]) => void): void;
    readlink?(path: string, cb: Cb<string>): void;
    open?(path: string, flags: number, cb: Cb<number>): void;
    opendir?(path: string, flags: number, cb: Cb<number>): void;
    create?(path: string, mode: number, cb: Cb<number>): void;
    read?(path: string, fd: number, buf: Buffer, len: number, pos: number, cb: (n: number) => void): void;
    write?(path: string, fd: number, buf: Buffer, len: number, pos: number, cb: (n: number) => void): void;
    flush?(path: string, fd: number, cb: Cb): void;
    release?(path: string, fd: number, cb: Cb): void;
    releasedir?(path: string, fd: number, cb: Cb): void;
    truncate?(path: string, size: number, cb: Cb): void;
    ftruncate?(path: string, fd: number, size: number, cb: Cb): void;
    utimens?(path: string, atime: number, mtime: number, cb: Cb): void;
    chmod?(path: string, mode: number, cb: Cb): void;
    chown?(path: string, uid: number, gid: number, cb: Cb): void;
    mkdir?(path: string, mode: number, cb: Cb): void;
    rmdir?(path: string, cb: Cb): void;
    unlink?(path: string, cb: Cb): void;
    rename?(src: string, dest: string, cb: Cb): void;
    link?(src: string, dest: string, cb: Cb): void;
    symlink?(src: string, dest: string, cb: Cb): void;
    mknod?(path: string, mode: number, dev: number, cb: Cb): void;
    getxattr?(path: string, name: string, pos: number, cb: (err: number, value?: Buffer | null) => void): void;
    listxattr?(path: string, cb: (err: number, list?: string[]) => void): void;
    setxattr?(path: string, name: string, value: Buffer, pos: number, flags: number, cb: Cb): void;
    removexattr?(path: string, name: string, cb: Cb): void;
  }
  export interface FuseOpts {
    timeout?: number | false | Record<string, number | false>;
    allowOther?: boolean;
    fsname?: string;
    subtype?: string;
    force?: boolean;
    mkdir?: boolean;
    debug?: boolean;
  }
  class Fuse {
    constructor(mnt: string, ops: Ops, opts?: FuseOpts);
    readonly mnt: string;
    mount(cb: (err: Error | null) => void): void;
    unmount(cb: (err: Error | null) => void): void;
    static unmount(mnt: string, cb: (err: Error | null) => void): void;
    /** The `-o…` argument for libfuse; subclasses append options fuse-native has no flag for. */
    protected _fuseOptions(): string;
    /** One dispatcher per opcode, called from C as (nativeHandler, opcode, ...args). */
    protected _handlers: Array<(nativeHandler: Buffer, opcode: number, ...args: unknown[]) => unknown>;
    /** Builds _handlers; called once, from the constructor (after ops and timeout are set). */
    protected _makeHandlerArray(): Array<(nativeHandler: Buffer, opcode: number, ...args: never[]) => unknown>;
    /** The ops and the timeout option, as given to the constructor. */
    protected ops: Ops;
    protected timeout: FuseOpts['timeout'];
    /** The native fuse_thread_t of a mounted instance (null before mount). */
    protected _thread: Buffer | null;
  }
  export default Fuse;
}
