import type { Kind, CallOptions, OutputReader, InputWriter, ProcCmd, DockerRun } from '../api/types';
import type { Clock } from '../kit/clock';

/**
 * An element: what an anchor holds. Each kind implements the operations it supports; the Server
 * dispatches a call to the element at the path and answers ENOTSUP-like errors ("not a channel")
 * for operations the kind lacks.
 */
export interface Element {
  readonly kind: Kind;
  /** The stat JSON (REFERENCE.md Appendix A shapes). */
  peek(): unknown | Promise<unknown>;
  /** Stops the element and frees what it holds; throws (EBUSY) to refuse. */
  scrub(): void | Promise<void>;
  /** Called by the element when it wants to be detached by itself (proc with Scrub). */
  onDetach?: (cb: () => void) => void;
}

/** The process-like verbs shared by proc and docker. */
export interface ProcLike extends Element {
  start(cmd: ProcCmd | DockerRun, opts?: CallOptions): Promise<void>;
  signal(sig: string): Promise<void>;
  wait(opts?: CallOptions): Promise<unknown>;
  openInput(): InputWriter;
  openOutput(which: 'stdout' | 'stderr'): OutputReader;
}

/** What a kind's factory gets from the server hosting it. */
export interface ElementContext {
  /** The element's anchor path. */
  path: string;
  clock: Clock;
  /** Appends one line to the server's stderr log, in the original's timestamped form. */
  log(line: string): void;
  /** Asks the server to detach this element (auto-scrub). */
  detach(): void;
}

/** The verbs of a DNS element (src/node/kinds/dns.ts). */
export interface DnsLike extends Element {
  set(records: string, replace: boolean): Promise<void>;
  unset(name: string): Promise<void>;
  rebind(addr: string): Promise<void>;
}
