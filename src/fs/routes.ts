import type { Kind } from '../api/types';
import { doc, type FileSpec } from './files/control';
import { snapshot } from './files/snapshot';
import { directory, FS_KINDS } from './kinds';

/**
 * The shape of the mount, as data. `resolve` turns a path into a node; each element kind's file
 * table (src/fs/kinds/) lists its control files, and readdir, getattr, open and access all derive
 * from it. Under the root:
 *
 *   /.self                      symlink to the server this mount dialled
 *   /help                       what the root holds
 *   /X…/a/b                     anchors
 *   /X…/a/b/KIND                the element an anchor holds, a directory named after its kind
 *   /X…/a/b/KIND/FILE           its control files
 */
export type Node =
  | { type: 'root' }
  | { type: 'self' }
  | { type: 'anchor'; anchor: string }
  | { type: 'element'; anchor: string; kind: Kind }
  /** A control file; the root's own files have the anchor `/` and no kind. */
  | { type: 'file'; anchor: string; kind: Kind; file: FileSpec }
  | { type: 'none' };

export const SELF = '.self';

/** The root's entries, for its `help`: it lists servers only, as `ls` shows; the rest is by name. */
const ROOT_HELP = [
  { name: 'X…', help: 'one directory per server in this mount\'s view: its anchors, and its server element' },
  { name: SELF, help: 'a symlink to the server this mount dialled' },
  { name: 'help', help: 'this list' },
];
const rootHelp = doc('this list', snapshot('help', () => {
  const w = Math.max(...ROOT_HELP.map((e) => e.name.length));
  return ROOT_HELP.map((e) => `${e.name.padEnd(w)}  ${e.help}\n`).join('');
}));

export class Routes {
  readonly #dirs = new Map<string, readonly FileSpec[]>();
  readonly #seen = new Map<string, Node>();

  /** `kinds`: the file tables (default: src/fs/kinds/index.ts); a test may add its own kind. */
  constructor(kinds: ReadonlyArray<{ kind: Kind; files: readonly FileSpec[] }> = FS_KINDS) {
    for (const k of kinds) this.#dirs.set(k.kind, directory(k.files));
  }

  isKind(name: string): boolean {
    return this.#dirs.has(name);
  }

  /** The control files of an element directory, `help` and `error` last. */
  filesOf(kind: Kind): readonly FileSpec[] {
    return this.#dirs.get(kind) ?? [];
  }

  /**
   * The node of a path. Paths repeat (a loop over one file asks about it at every open), and the
   * answer depends on the path alone, so the last few thousand (of ordinary length) are kept.
   */
  resolve(path: string): Node {
    let n = this.#seen.get(path);
    if (n === undefined) {
      n = this.#resolve(path);
      if (path.length <= SEEN_PATH_MAX) {
        if (this.#seen.size >= SEEN_MAX) this.#seen.clear();
        this.#seen.set(path, n);
      }
    }
    return n;
  }

  #resolve(path: string): Node {
    const parts = path.split('/').filter((p) => p !== '');
    if (parts.length === 0) return { type: 'root' };
    if (parts.length === 1 && parts[0] === SELF) return { type: 'self' };
    if (parts.length === 1 && parts[0] === rootHelp.name) return { type: 'file', anchor: '/', kind: '', file: rootHelp };
    for (let i = 1; i < parts.length; i++) {
      const kind = parts[i]!;
      if (!this.isKind(kind)) continue;
      const anchor = '/' + parts.slice(0, i).join('/');
      if (i === parts.length - 1) return { type: 'element', anchor, kind };
      const file = i === parts.length - 2 ? this.filesOf(kind).find((f) => f.name === parts[i + 1]) : undefined;
      return file ? { type: 'file', anchor, kind, file } : { type: 'none' };
    }
    return { type: 'anchor', anchor: '/' + parts.join('/') };
  }
}

/** How many resolved paths a Routes keeps, and how long each may be (about 1 MB at most). */
const SEEN_MAX = 4096;
const SEEN_PATH_MAX = 256;

export const ROUTES = new Routes();
