import type { Element } from './element';

/**
 * The anchor tree of one server. Walking creates anchors; an anchor holds at most one element.
 * An anchor with no element, no children and no holds is removed at once, and the removal
 * cascades up (docs/fs.md, without the original's laziness). Holds are references: the
 * mount's mkdir, or a call that is in progress on the anchor.
 */
export class Anchor {
  readonly children = new Map<string, Anchor>();
  element: Element | undefined;
  /** References that keep this anchor alive while it is empty. */
  holds = 0;
  /** True while a make is under way, so two makes on one anchor cannot both pass the empty check. */
  making = false;

  constructor(
    readonly name: string,
    readonly parent: Anchor | undefined,
  ) {}

  get path(): string {
    const parts: string[] = [];
    for (let a: Anchor | undefined = this; a?.parent; a = a.parent) parts.push(a.name);
    return '/' + parts.reverse().join('/');
  }

  get busy(): boolean {
    return this.element !== undefined || this.children.size > 0 || this.holds > 0 || this.making;
  }
}

export class AnchorTree {
  /** The server anchor, /Xid. */
  readonly root: Anchor;
  constructor(id: string) {
    this.root = new Anchor(id, undefined);
  }

  /** Finds the anchor at parts (below the server anchor), creating missing ones. */
  walk(parts: readonly string[]): Anchor {
    let a = this.root;
    for (const p of parts) {
      let c = a.children.get(p);
      if (!c) a.children.set(p, (c = new Anchor(p, a)));
      a = c;
    }
    return a;
  }

  /** Finds the anchor at parts without creating anything. */
  find(parts: readonly string[]): Anchor | undefined {
    let a: Anchor | undefined = this.root;
    for (const p of parts) {
      a = a.children.get(p);
      if (!a) return undefined;
    }
    return a;
  }

  /** Removes a, and then each parent, while they are empty and unreferenced. */
  collect(a: Anchor): void {
    while (a.parent && !a.busy) {
      a.parent.children.delete(a.name);
      a = a.parent;
    }
  }

  /** Runs fn with a held for its duration, so the anchor survives the call, then collects. */
  async using<T>(parts: readonly string[], fn: (a: Anchor) => Promise<T> | T): Promise<T> {
    const a = this.walk(parts);
    a.holds++;
    try {
      return await fn(a);
    } finally {
      a.holds--;
      this.collect(a);
    }
  }

  /** Every anchor, depth first. */
  *all(from: Anchor = this.root): Generator<Anchor> {
    yield from;
    for (const c of from.children.values()) yield* this.all(c);
  }
}

/** Splits an anchor path: empty components are dropped, everything else is literal (§2.1). */
export function splitPath(path: string): string[] {
  // by hand: every operation splits its path, some twice (split and filter made two arrays)
  const parts: string[] = [];
  let from = 0;
  for (let i = 0; i <= path.length; i++) {
    if (i < path.length && path.charCodeAt(i) !== 47 /* '/' */) continue;
    if (i > from) parts.push(path.slice(from, i));
    from = i + 1;
  }
  return parts;
}
