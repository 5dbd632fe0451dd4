import type { CallOptions, OutputReader, InputWriter, ProcCmd, DockerRun } from '../api/types';
import type { Clock } from '../kit/clock';
import type { View } from './kinds/subscription';

/**
 * An element kind is a plugin: one module in src/node/kinds/ that says what its state is, how to
 * make it, what `mkdir` makes, and which verbs it answers (a table from verb to function). The
 * Server knows no kind by name: it finds the element at a path and calls the verb through the
 * element's table, answering "not a channel"-like errors for verbs the kind lacks. docs/kinds.md
 * walks through adding one.
 */

/** What every element's state can do: its stat JSON, and freeing what it holds. */
export interface ElementState {
  /** The stat JSON (docs/fs.md shows each kind's `peek`). */
  peek(): unknown | Promise<unknown>;
  /** Stops the element and frees what it holds; throws (EBUSY) to refuse. */
  scrub(): void | Promise<void>;
  /** Daemon shutdown: end what runs within the grace period (default: scrub). */
  shutdown?(graceMs: number): Promise<void>;
}

/** Each verb's arguments (after the path) and answer, as the Client API has them. */
export interface VerbSigs {
  setCap: { args: [cap: number]; result: void };
  send: { args: [msg: Buffer]; result: void };
  trysend: { args: [msg: Buffer]; result: void };
  recv: { args: []; result: Buffer };
  tryrecv: { args: []; result: Buffer };
  unrecv: { args: [msg: Buffer]; result: void };
  close: { args: []; result: void };
  start: { args: [cmd: ProcCmd | DockerRun]; result: void };
  signal: { args: [sig: string]; result: void };
  wait: { args: []; result: unknown };
  env: { args: []; result: string[] };
  openInput: { args: []; result: InputWriter };
  openOutput: { args: [which: 'stdout' | 'stderr']; result: OutputReader };
  dnsSet: { args: [records: string, replace: boolean]; result: void };
  dnsUnset: { args: [name: string]; result: void };
  dnsRebind: { args: [addr: string]; result: void };
}
export type VerbName = keyof VerbSigs;

/** What a call answers on an element whose kind lacks the verb (the original's texts). */
export const NOT_KIND: Record<VerbName, string> = {
  setCap: 'not a channel',
  send: 'not a channel',
  trysend: 'not a channel',
  recv: 'not a channel or subscription',
  tryrecv: 'not a channel or subscription',
  unrecv: 'not a channel or subscription',
  close: 'not a channel',
  start: 'not a process or a container',
  signal: 'anchor is not a process or a docker container',
  wait: 'anchor is not a process or a docker container',
  env: 'not a process or a container',
  openInput: 'not a process or a container',
  openOutput: 'not a process or a container',
  dnsSet: 'not a nameserver element',
  dnsUnset: 'not a nameserver element',
  dnsRebind: 'not a nameserver element',
};

export type VerbFn<S, V extends VerbName> = (
  state: S, args: VerbSigs[V]['args'], opts: CallOptions | undefined,
) => VerbSigs[V]['result'] | Promise<VerbSigs[V]['result']>;

/** A kind's verb table: the verbs it answers. */
export type Verbs<S> = { [V in VerbName]?: VerbFn<S, V> };

/** What a kind's factory gets from the server hosting it. */
export interface ElementContext {
  /** The element's anchor path. */
  path: string;
  clock: Clock;
  /** Appends one line to the server's stderr log, in the original's timestamped form. */
  log(line: string): void;
  /** Asks the server to detach this element (auto-scrub). */
  detach(): void;
  /** Output buffer window per stream, bytes (process-like kinds). */
  outputWindow?: number;
  /** The server's membership view at the time of the make (the subscription kinds need it). */
  view?: View;
}

/** A kind that needs something outside the daemon (docker's engine) is off until enabled. */
export interface OptIn {
  /** Why make fails while it is off. */
  off: string;
  /** Checks and takes what the kind needs; fails the daemon's start. Returns the cleanup. */
  enable(log: (line: string) => void): Promise<() => Promise<void>>;
}

/** One kind's module: its state type S and make spec type Spec stay inside it. */
export interface KindModule<S extends ElementState, Spec> {
  kind: string;
  /** What `mkdir KIND` in the mount makes (an idle or empty element). */
  defaultSpec: Spec;
  /** Checks a spec that may come off the wire. */
  parse(spec: unknown): Spec;
  /** The spec for the original's `Making <kind> at <path>, using <spec>` line. */
  describe(spec: Spec): string;
  make(spec: Spec, ctx: ElementContext): Promise<S>;
  verbs: Verbs<S>;
  optIn?: OptIn;
}

/** An element as the Server holds it: its state closed over with its kind's verb table. */
export interface Element {
  readonly kind: string;
  peek(): unknown | Promise<unknown>;
  scrub(): void | Promise<void>;
  shutdown(graceMs: number): Promise<void>;
  /** The verb bound to this element, or undefined when its kind lacks it. */
  verb<V extends VerbName>(v: V): ((args: VerbSigs[V]['args'], opts?: CallOptions) => Promise<VerbSigs[V]['result']>) | undefined;
}

/** A registered kind, its types closed over: what the registration list holds. */
export interface Kind {
  readonly kind: string;
  readonly defaultSpec: unknown;
  readonly optIn?: OptIn;
  /** Checks a spec; what comes back describes it (for the `Making` line) and makes the element. */
  prepare(spec: unknown): { describe: string; make(ctx: ElementContext): Promise<Element> };
}

/** Wraps a kind's module for the registration list (src/node/kinds/index.ts). */
export function defineKind<S extends ElementState, Spec>(m: KindModule<S, Spec>): Kind {
  return {
    kind: m.kind,
    defaultSpec: m.defaultSpec,
    optIn: m.optIn,
    prepare(raw) {
      const spec = m.parse(raw);
      return { describe: m.describe(spec), make: async (ctx) => bind(m, await m.make(spec, ctx)) };
    },
  };
}

/** An element of a module's kind over the given state. */
export function bind<S extends ElementState>(m: { kind: string; verbs: Verbs<S> }, s: S): Element {
  return {
    kind: m.kind,
    peek: () => s.peek(),
    scrub: () => s.scrub(),
    shutdown: async (graceMs) => (s.shutdown ? s.shutdown(graceMs) : s.scrub()),
    verb<V extends VerbName>(v: V) {
      const f: VerbFn<S, V> | undefined = m.verbs[v];
      if (!f) return undefined;
      return async (args: VerbSigs[V]['args'], opts?: CallOptions) => f(s, args, opts);
    },
  };
}
