import { constants, readFileSync } from 'node:fs';
import type { Ops } from 'fuse-native';
import type { Caller } from './ops';
import { errno } from './errno';

/**
 * `--allow-other` lets other users look, not act. FUSE's allow_other admits every local user to
 * every op, and the mount cannot use the kernel's own mode checks (its control files are not
 * plain files), so the mount decides itself, on the caller's uid and gid that the patched
 * fuse-native reports for each request: the mount's owner, root, and the users and groups named
 * by --allow-uid/--allow-group may do anything; anyone else may list, stat and read (peek,
 * outputs, wait), and every op that changes something fails EACCES: mkdir, rmdir, unlink,
 * create, open for writing or truncating, write, truncate, rename, links, modes, owners, times,
 * extended attributes, and reading a `recv` or `tryrecv` file (it takes a message or event away).
 */
export interface Policy {
  /** The mount's owner (the mounting uid). */
  owner: number;
  uids: ReadonlySet<number>;
  gids: ReadonlySet<number>;
}

export interface Refusal {
  op: string;
  path: string;
  caller: Caller | null;
  message: string;
}

/** Ops that change something, whatever their arguments. */
const ACTS = ['mkdir', 'rmdir', 'unlink', 'create', 'mknod', 'write', 'truncate', 'ftruncate', 'rename', 'link', 'symlink', 'chmod', 'chown', 'utimens', 'setxattr', 'removexattr', 'fallocate'];

const { O_ACCMODE = 3, O_RDONLY, O_TRUNC } = constants as typeof constants & { O_ACCMODE?: number };

/** Whether an op with these arguments changes something (or takes something away). */
export function isAct(op: string, args: unknown[]): boolean {
  if (ACTS.includes(op)) return true;
  if (op !== 'open') return false;
  const flags = Number(args[1]);
  return (flags & O_ACCMODE) !== O_RDONLY || (flags & O_TRUNC) !== 0 || /\/(try)?recv$/.test(String(args[0]));
}

/** The caller's supplementary groups, from /proc (FUSE reports the primary gid only). */
function groupsOf(pid: number): number[] {
  try {
    const m = /^Groups:\s*(.*)$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? m[1].trim().split(/\s+/).filter(Boolean).map(Number) : [];
  } catch {
    return [];
  }
}

/** Whether the caller may act; an unknown caller may not. */
export function mayAct(p: Policy, c: Caller | null): boolean {
  if (!c) return false;
  if (c.uid === 0 || c.uid === p.owner || p.uids.has(c.uid)) return true;
  if (p.gids.size === 0) return false;
  if (p.gids.has(c.gid)) return true;
  return groupsOf(c.pid).some((g) => p.gids.has(g));
}

/**
 * Wraps the FUSE ops: an act by a caller who may not act is answered EACCES at once, before the
 * op runs, and reported once (the daemon writes it to ops.log).
 */
export function guard(ops: Ops, p: Policy, caller: () => Caller | null, refused: (r: Refusal) => void): Ops {
  const out: Record<string, unknown> = { ...ops };
  for (const [op, fn] of Object.entries(ops)) {
    if (typeof fn !== 'function' || (!ACTS.includes(op) && op !== 'open')) continue;
    out[op] = (...args: unknown[]) => {
      const c = caller();
      if (isAct(op, args) && !mayAct(p, c)) {
        const cb = args[args.length - 1] as (code: number) => void;
        const who = c ? `uid ${c.uid}` : 'an unknown caller';
        refused({ op, path: String(args[0]), caller: c, message: `${who} may look, not act, in this mount (--allow-other without --allow-uid or --allow-group naming it)` });
        return cb(errno('EACCES'));
      }
      return (fn as (...a: unknown[]) => unknown)(...args);
    };
  }
  return out as Ops;
}
