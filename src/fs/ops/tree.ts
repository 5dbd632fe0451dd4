import type { Stat } from 'fuse-native';
import { CircuitError, E } from '../../kit/errors';
import { type Now, then } from '../../kit/now';
import { DIR, FILE_MODE, LINK, type Op, type OpsContext, depth } from './context';

/** The ops on the tree's shape: look up, list, follow `self`, make and remove directories. */

export const getattr = (c: OpsContext): Op<'getattr'> => (path, cb) => {
  const caller = c.caller();
  // Answered in the same turn where the client answers without waiting (an in-process server).
  c.answer('getattr', path, caller, (): Now<Stat> => {
    const n = c.resolve(path);
    switch (n.type) {
      case 'root': return c.attr(DIR);
      case 'self': return c.attr(LINK);
      case 'none': throw new CircuitError('ENOENT', `no such file: ${path}`);
    }
    const call = { origin: c.origin(caller) };
    switch (n.type) {
      case 'anchor': return then(c.knownServer(n.anchor, call), () => then(c.stat(n.anchor, call), () => c.attr(DIR)));
      case 'element': return then(c.ensureElement(n, call), () => c.attr(DIR));
      case 'file': {
        const attr = c.attr(FILE_MODE[n.file.mode]);
        return n.anchor === '/' ? attr : then(c.ensureElement(n, call), () => attr);
      }
    }
  }, cb, true);
};

export const readdir = (c: OpsContext): Op<'readdir'> => (path, cb) => {
  const caller = c.caller();
  c.answer('readdir', path, caller, async () => {
    const n = c.resolve(path);
    const call = { origin: c.origin(caller) };
    const names = ['.', '..'];
    if (n.type === 'root') {
      names.push(...(await c.client.list('/', call)).map((e) => e.name));
    } else if (n.type === 'anchor') {
      const [entries, st] = await Promise.all([c.client.list(n.anchor, call), c.client.stat(n.anchor, call)]);
      if (st.kind) names.push(st.kind);
      names.push(...entries.map((e) => e.name));
    } else if (n.type === 'element') {
      await c.ensureElement(n, call);
      names.push(...c.routes.filesOf(n.kind).map((f) => f.name));
    } else {
      throw new CircuitError(n.type === 'none' ? 'ENOENT' : 'ENOTDIR', `not a directory: ${path}`);
    }
    return names;
  }, (err, names) => cb(err, names), true);
};

export const readlink = (c: OpsContext): Op<'readlink'> => (path, cb) => {
  c.answer('readlink', path, c.caller(), async () => {
    if (c.resolve(path).type !== 'self') throw new CircuitError('EINVAL', `not a symlink: ${path}`);
    return (await c.client.home()).id;
  }, cb, true);
};

export const mkdir = (c: OpsContext): Op<'mkdir'> => (path, _mode, cb) => {
  const caller = c.caller();
  c.answer('mkdir', path, caller, async () => {
    const n = c.resolve(path);
    const call = { origin: c.origin(caller) };
    if (n.type === 'anchor' && depth(n.anchor) > 1) return c.client.hold(n.anchor, call);
    if (n.type === 'element' && n.kind !== 'server') {
      // null: the kind's default (its module's defaultSpec), an idle or empty element.
      return c.noteElement(n, () => c.client.make(n.anchor, n.kind, null, call));
    }
    if (n.type === 'anchor' || n.type === 'element') throw E.outsideServers();
    throw new CircuitError(n.type === 'none' ? 'EPERM' : 'EEXIST', `cannot make ${path}`);
  }, cb);
};

export const rmdir = (c: OpsContext): Op<'rmdir'> => (path, cb) => {
  const caller = c.caller();
  c.answer('rmdir', path, caller, async () => {
    const n = c.resolve(path);
    const call = { origin: c.origin(caller) };
    if (n.type === 'anchor' && depth(n.anchor) > 1) return c.client.unhold(n.anchor, call);
    if (n.type === 'element' && n.kind !== 'server') {
      await c.ensureElement(n, call);
      return c.noteElement(n, () => c.client.scrub(n.anchor, call));
    }
    if (n.type === 'file') throw new CircuitError('ENOTDIR', `not a directory: ${path}`);
    throw new CircuitError('EPERM', `cannot remove ${path}`);
  }, cb);
};
