import { CircuitError } from '../../kit/errors';
import type { OpenFile, Written } from '../files/control';
import { type Op, type OpsContext, wroteBy } from './context';

/** The ops on an open control file: read, write, flush, each run by OpsContext.onHandle. */

export const read = (c: OpsContext): Op<'read'> => (path, fd, buf, len, pos, cb) => {
  c.direct?.take(fd); // the FUSE thread could not answer from the pipe: the stream is ours again
  // An answer already rendered (the second read of a snapshot, the EOF read) needs no watch,
  // abort signal or promise: it is copied and answered at once.
  const file = c.closed ? undefined : c.handles.get(fd)?.file;
  const ready = file?.readNow?.(len, pos);
  if (ready) return process.nextTick(cb, ready.copy(buf, 0, 0, Math.min(len, ready.length)));
  // A stream's bytes that are here already go straight into FUSE's buffer, in this turn.
  if (file?.readInto) {
    const caller = c.caller();
    const n = readInto(file.readInto, buf, len, () => wroteBy(caller));
    if (n !== undefined) {
      // the buffer may be empty now: the next reads can come from the pipe (direct.ts)
      if (n > 0) c.direct?.offer(fd, file, caller);
      return process.nextTick(cb, n);
    }
  }
  c.onHandle('read', path, fd, async (h, ctx) => {
    if (!h.file.read) throw new CircuitError('EBADF', `${path} is not readable`);
    const data = await h.file.read(len, pos, ctx);
    c.handles.offer(h); // a recv's message, say: the reads after this one need no JavaScript
    return data.copy(buf, 0, 0, Math.min(len, data.length));
  }, cb);
};

export const write = (c: OpsContext): Op<'write'> => (path, fd, buf, len, _pos, cb) => {
  const data = Buffer.from(buf.subarray(0, len)); // FUSE reuses buf once we return
  const h = c.handles.get(fd);
  if (h) h.fresh = false;
  // Bytes that are only buffered (a message being written) need no watch or abort signal.
  if (h?.file.writeNow && !c.closed) {
    const caller = c.caller();
    try {
      if (h.file.writeNow(data, c.plainCtx(h, caller))) return process.nextTick(cb, data.length);
    } catch (err) {
      return process.nextTick(cb, c.handleFailure(h, 'write', path, caller, err));
    }
  }
  c.onHandle('write', path, fd, async (h, ctx) => {
    if (!h.file.write) throw new CircuitError('EBADF', `${path} is not writable`);
    await h.file.write(data, ctx);
    return data.length;
  }, cb);
};

export const flush = (c: OpsContext): Op<'flush'> => (path, fd, cb) => {
  c.direct?.take(fd);
  const h = c.closed ? undefined : c.handles.get(fd);
  if (h && !h.file.flush) return process.nextTick(cb, 0); // nothing to judge: answered at once
  c.onHandle('flush', path, fd, async (h, ctx) => {
    await h.file.flush?.(ctx);
    return 0;
  }, cb);
};

/** readInto, with a failure left to the read that waits (it reports it as any op's). */
function readInto(f: NonNullable<OpenFile['readInto']>, buf: Buffer, len: number, wrote: () => Written | null): number | undefined {
  try {
    return f(buf, len, wrote);
  } catch {
    return undefined;
  }
}
