import type { Element, ElementContext } from './element';
import type { Kind } from '../api/types';

/**
 * Each element kind registers a factory here; the server looks kinds up instead of knowing them.
 * `arg` renders the spec for the original's `Making <kind> at <path>, using <arg>` line.
 */
export interface ElementKind<S = unknown> {
  kind: Kind;
  make(spec: S, ctx: ElementContext): Promise<Element>;
  arg(spec: S): string;
}

export class KindRegistry {
  readonly #kinds = new Map<string, ElementKind>();
  register<S>(k: ElementKind<S>): void {
    this.#kinds.set(k.kind, k as ElementKind);
  }
  get(kind: string): ElementKind | undefined {
    return this.#kinds.get(kind);
  }
}
