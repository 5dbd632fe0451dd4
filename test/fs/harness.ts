import type { Ops } from 'fuse-native';
import { constants } from 'fs';
import type { Client } from '../../src/api/types';
import { CallerWatch } from '../../src/fs/interrupts';
import { type Caller, createOps } from '../../src/fs/ops';

/**
 * Drives the FUSE ops directly, with no mount: each method calls one op and resolves with what
 * it replied (a negative errno, a byte count, or 0 and a value). The caller can be set per op.
 */
export function harness(client: Client, opts: { watch?: CallerWatch; abortGraceMs?: number } = {}) {
  let caller: Caller | null = { pid: process.pid, uid: 0, gid: 0 }; // a live caller: /proc shows no pending signal
  const lines: string[] = [];
  const fs = createOps({ client, caller: () => caller, log: (l) => lines.push(l), uid: 0, gid: 0, ...opts });
  const ops = fs.ops as Required<Ops>;
  const call = <T>(fn: (cb: (err: number, v?: T) => void) => void) =>
    new Promise<{ err: number; value?: T }>((res) => fn((err, value) => res({ err, value })));
  return {
    fs,
    lines,
    setCaller(c: Caller | null) { caller = c; },
    getattr: (p: string) => call((cb) => ops.getattr(p, cb)),
    readdir: (p: string) => call<string[]>((cb) => ops.readdir(p, (e, n) => cb(e, n))),
    readlink: (p: string) => call<string>((cb) => ops.readlink(p, cb)),
    mkdir: (p: string) => call((cb) => ops.mkdir(p, 0o755, cb)),
    rmdir: (p: string) => call((cb) => ops.rmdir(p, cb)),
    open: async (p: string, flags: number = constants.O_RDONLY) => {
      const r = await call<number>((cb) => ops.open(p, flags, cb));
      if (r.err) throw Object.assign(new Error(`open ${p}: ${r.err}`), { errno: r.err });
      return r.value!;
    },
    openErr: async (p: string, flags: number) => (await call<number>((cb) => ops.open(p, flags, cb))).err,
    /** Reads once: the bytes, or the negative errno. */
    read: (p: string, fd: number, len = 4096, pos = 0) =>
      new Promise<Buffer | number>((res) => {
        const buf = Buffer.alloc(len);
        ops.read(p, fd, buf, len, pos, (n) => res(n < 0 ? n : Buffer.from(buf.subarray(0, n))));
      }),
    write: (p: string, fd: number, data: string | Buffer) =>
      new Promise<number>((res) => {
        const buf = Buffer.from(data);
        ops.write(p, fd, buf, buf.length, 0, (n) => res(n));
      }),
    flush: async (p: string, fd: number) => (await call((cb) => ops.flush(p, fd, cb))).err,
    release: async (p: string, fd: number) => (await call((cb) => ops.release(p, fd, cb))).err,
    ftruncate: async (p: string, fd: number, size = 0) => (await call((cb) => ops.ftruncate(p, fd, size, cb))).err,
    truncate: async (p: string, size = 0) => (await call((cb) => ops.truncate(p, size, cb))).err,
    /** open, read to EOF, close: the whole text (or the first errno). */
    async cat(p: string): Promise<string | number> {
      const fd = await this.open(p);
      const parts: Buffer[] = [];
      let pos = 0;
      for (;;) {
        const r = await this.read(p, fd, 4096, pos);
        if (typeof r === 'number') { await this.release(p, fd); return r; }
        if (r.length === 0) break;
        parts.push(r);
        pos += r.length;
      }
      await this.flush(p, fd);
      await this.release(p, fd);
      return Buffer.concat(parts).toString();
    },
    /** open for writing (with extra flags), one write, close: the first errno, or 0. */
    async echo(p: string, data: string, flags = 0): Promise<number> {
      const fd = await this.open(p, constants.O_WRONLY | flags);
      const w = await this.write(p, fd, data);
      const f = await this.flush(p, fd);
      await this.release(p, fd);
      return w < 0 ? w : f;
    },
  };
}

export const errnoOf = (name: string) => -(require('os').constants.errno as Record<string, number>)[name];
