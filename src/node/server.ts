import { MESSAGE_MAX } from '../api/limits';
import { randomBytes } from 'node:crypto';
import type {
  CallOptions, Client, DockerRun, Entry, InputWriter, Kind, MakeSpec, Member, OutputReader, ProcCmd, Received, ServerInfo,
} from '../api/types';
import { AnchorTree, splitPath, type Anchor } from './anchor';
import { NOT_KIND, type ElementContext, type Kind as KindPlugin, type VerbName, type VerbSigs } from './element';
import { serverElement } from './kinds/server';
import { KINDS } from './kinds';
import { OpLog, q } from './oplog';
import { Takes } from './takes';
import { LocalView } from './view';
import type { View } from './kinds/subscription';
import { stackReport } from './stk';
import { AppError, E, toCircuitError, type CircuitError } from '../kit/errors';
import { systemClock, type Clock } from '../kit/clock';
import type { Now } from '../kit/now';

export { VERSION } from '../kit/version';

export interface ServerOptions {
  /** X + 16 hex; random when absent. */
  id?: string;
  url?: string;
  /** The operations log file (ops.log in the var folder); none when absent. */
  logFile?: string;
  clock?: Clock;
  /** Largest channel message, bytes (default 16 MiB). */
  maxMessage?: number;
  /** Time between SIGTERM and SIGKILL for processes at shutdown, ms. */
  graceMs?: number;
  /** Output buffer window per stream, bytes. */
  outputWindow?: number;
  stderr?: (line: string) => void;
  /** The kinds this server makes (default: the registration list, src/node/kinds/index.ts). */
  kinds?: readonly KindPlugin[];
  /** Runs on a `stop` request: whoever runs the daemon stops it (without, `stop` is refused). */
  onStop?: () => void;
}

/** Calls on paths of other servers go here (the mesh's router); absent on a lone server. */
export type Route = (id: string) => Client | undefined;

/** What the mesh (src/node/mesh.ts) gives a server to make it part of a cluster. */
export interface MeshHooks {
  /** The membership view: `ls /`, @join/@leave, `members`. */
  view: View & { members(): Member[] };
  /** The client for another server's paths; undefined for a server not in the view. */
  route: Route;
  /** `join` requests (circuit join, server/ctl). */
  join(target: string): Promise<void>;
}

export const DEFAULT_MAX_MESSAGE = MESSAGE_MAX;

export function newServerId(): string {
  return 'X' + randomBytes(8).toString('hex');
}

/**
 * A server: one anchor tree and its elements. It implements the Client API for paths under its
 * own id and hands paths of other servers to the router. Every operation is serialised per anchor
 * where it matters (make/scrub) and appended to the operations log with its origin and result.
 */
export class Server implements Client {
  readonly id: string;
  url: string;
  readonly tree: AnchorTree;
  readonly kinds: ReadonlyMap<string, KindPlugin>;
  /** Kinds with an opt-in (docker) that this server has enabled. */
  readonly #enabled = new Set<string>();
  readonly #outputWindow: number | undefined;
  readonly oplog: OpLog;
  readonly clock: Clock;
  readonly maxMessage: number;
  readonly graceMs: number;
  readonly started = new Date();
  /** Messages handed to receivers over connections and not yet settled (src/node/takes.ts). */
  readonly takes = new Takes((path, msg) => this.unrecv(path, msg), (line) => this.oplog.say(line));
  readonly #localView: View & { members(): Member[] };
  readonly #onStop: (() => void) | undefined;
  #mesh: MeshHooks | null = null;
  #stopping = false;

  constructor(opts: ServerOptions = {}) {
    this.id = opts.id ?? newServerId();
    this.url = opts.url ?? '';
    this.clock = opts.clock ?? systemClock;
    this.maxMessage = opts.maxMessage ?? DEFAULT_MAX_MESSAGE;
    this.graceMs = opts.graceMs ?? 3000;
    this.tree = new AnchorTree(this.id);
    this.oplog = new OpLog(opts.logFile, opts.stderr);
    this.#localView = new LocalView(() => ({ id: this.id, url: this.url, state: 'alive' }));
    this.#onStop = opts.onStop;
    this.#outputWindow = opts.outputWindow;
    this.kinds = new Map((opts.kinds ?? KINDS).map((k) => [k.kind, k]));
    this.tree.root.element = serverElement(this);
  }

  /**
   * Turns on a kind that needs something outside the daemon (docker: its engine); fails when
   * that is missing. Returns what undoes it at shutdown.
   */
  async enable(kind: string): Promise<() => Promise<void>> {
    const k = this.kinds.get(kind);
    if (!k?.optIn) throw E.notSupported(`unknown element kind ${kind}`);
    const undo = await k.optIn.enable((l) => this.oplog.say(l));
    this.#enabled.add(kind);
    return undo;
  }

  /** Joins the server to a cluster (the mesh's hooks), or with null leaves it alone again. */
  useMesh(hooks: MeshHooks | null): void {
    this.#mesh = hooks;
  }

  /** This server's membership view: its mesh's, or itself alone. */
  get view(): View & { members(): Member[] } {
    return this.#mesh?.view ?? this.#localView;
  }

  /** The client for another server's paths (through the mesh); undefined when there is none. */
  route(id: string): Client | undefined {
    return this.#mesh?.route(id);
  }

  /** Logs the original's attach line; the daemon calls it once it serves. */
  attach(): void {
    this.oplog.say(`Attaching /${this.id} as server`);
    this.oplog.append({ op: 'attach', path: '/' + this.id, ok: true, origin: { via: 'server' } });
  }

  async home(): Promise<ServerInfo> {
    return { id: this.id, url: this.url };
  }

  // ---- anchors ----

  async list(path: string, opts?: CallOptions): Promise<Entry[]> {
    return this.listNow(path, opts);
  }

  /** list, answered in the call where nothing waits (this server's anchors, the view). */
  listNow(path: string, opts?: CallOptions): Now<Entry[]> {
    const parts = splitPath(path);
    if (parts.length === 0) {
      return this.view
        .members()
        .filter((m) => m.state === 'alive' || m.state === 'suspect')
        .map((m) => ({ name: m.id, path: '/' + m.id, kind: 'server' }))
        .sort(byName);
    }
    const remote = this.#remote(parts);
    if (remote) return remote.list(path, opts);
    const a = this.tree.find(parts.slice(1));
    if (!a) return [];
    return [...a.children.values()]
      .map((c) => ({ name: c.name, path: normal([this.id, ...splitPath(c.path)]), kind: c.element?.kind ?? null }))
      .sort(byName);
  }

  async stat(path: string, opts?: CallOptions): Promise<{ kind: Kind | null; children: number }> {
    return this.statNow(path, opts);
  }

  /** stat, answered in the call for this server's anchors. */
  statNow(path: string, opts?: CallOptions): Now<{ kind: Kind | null; children: number }> {
    const parts = this.#parts(path);
    const remote = this.#remote(parts);
    if (remote) return remote.stat(path, opts);
    const a = this.tree.find(parts.slice(1));
    if (!a) throw new AppError('ENOENT', `no anchor at ${normal(parts)}`);
    return { kind: a.element?.kind ?? null, children: a.children.size };
  }

  async hold(path: string, opts?: CallOptions): Promise<void> {
    const parts = this.#parts(path);
    const remote = this.#remote(parts);
    if (remote) return remote.hold(path, opts);
    this.tree.walk(parts.slice(1)).holds++;
  }

  async unhold(path: string, opts?: CallOptions): Promise<void> {
    const parts = this.#parts(path);
    const remote = this.#remote(parts);
    if (remote) return remote.unhold(path, opts);
    const a = this.tree.find(parts.slice(1));
    if (!a || !a.parent) return;
    if (a.element || a.children.size) throw new AppError('ENOTEMPTY', `anchor ${normal(parts)} is not empty`);
    if (a.holds > 0) a.holds--;
    this.tree.collect(a);
  }

  async peek(path: string, opts?: CallOptions): Promise<unknown> {
    return this.peekNow(path, opts);
  }

  /** peek, answered in the call for an element of this server whose peek waits for nothing. */
  peekNow(path: string, opts?: CallOptions): Now<unknown> {
    const parts = splitPath(path);
    if (parts.length === 0) return null;
    const remote = this.#remote(parts);
    if (remote) return remote.peek(path, opts);
    const el = this.tree.find(parts.slice(1))?.element;
    return el ? el.peek() : null;
  }

  async make<K extends string>(path: string, kind: K, spec: K extends keyof MakeSpec ? MakeSpec[K] : unknown, opts?: CallOptions): Promise<void> {
    const parts = splitPath(path);
    if (parts.length === 0) throw E.outsideServers();
    const remote = this.#remote(parts);
    if (remote) return remote.make(path, kind, spec, opts);
    const k = this.kinds.get(kind);
    const p = normal(parts);
    return this.#op('make', p, opts, { kind, spec }, async () => {
      if (!k) throw E.notSupported(`unknown element kind ${kind}`);
      if (k.optIn && !this.#enabled.has(kind)) throw E.notSupported(k.optIn.off);
      const made = k.prepare(spec ?? k.defaultSpec); // null: what `mkdir KIND` makes
      this.oplog.say(`Making ${kind} at ${q(p)}, using ${made.describe}`);
      await this.tree.using(parts.slice(1), async (a) => {
        if (a.element || a.making) throw E.busyAnchor();
        a.making = true;
        try {
          a.element = await made.make(this.#context(a));
        } finally {
          a.making = false;
        }
      });
    });
  }

  async scrub(path: string, opts?: CallOptions): Promise<void> {
    const parts = splitPath(path);
    if (parts.length <= 1 && !this.#remote(parts)) return; // the root and server anchors: nothing
    const remote = this.#remote(parts);
    if (remote) return remote.scrub(path, opts);
    const a = this.tree.find(parts.slice(1));
    if (!a?.element) return;
    await this.#op('scrub', normal(parts), opts, undefined, async () => this.#detach(a));
  }

  async #detach(a: Anchor): Promise<void> {
    const el = a.element;
    if (!el) return;
    await el.scrub();
    if (a.element !== el) return;
    a.element = undefined;
    this.oplog.say(`Scrubbing ${q(`/${this.id}${a.path === '/' ? '' : a.path}`)}`);
    this.tree.collect(a);
  }

  // ---- verbs: dispatched through the element's kind's verb table ----

  async setCap(path: string, cap: number, opts?: CallOptions): Promise<void> {
    return this.#verb(path, opts, 'setCap', [cap], { cap }, (r) => r.setCap(path, cap, opts), 'cap');
  }

  async send(path: string, msg: Buffer, opts?: CallOptions): Promise<void> {
    this.#checkSize(path, msg, 'send', opts);
    return this.#verb(path, opts, 'send', [msg], { bytes: msg.length }, (r) => r.send(path, msg, opts));
  }

  async trysend(path: string, msg: Buffer, opts?: CallOptions): Promise<void> {
    this.#checkSize(path, msg, 'trysend', opts);
    return this.#verb(path, opts, 'trysend', [msg], { bytes: msg.length }, (r) => r.trysend(path, msg, opts));
  }

  #checkSize(path: string, msg: Buffer, op: string, opts?: CallOptions): void {
    if (msg.length <= this.maxMessage) return;
    const err = E.tooLarge(msg.length, this.maxMessage);
    this.oplog.append({ op, path, origin: opts?.origin, ok: false, error: { code: err.code, message: err.message } });
    throw err;
  }

  async recv(path: string, opts?: CallOptions): Promise<Buffer> {
    return this.#verb(path, opts, 'recv', [], undefined, (r) => r.recv(path, opts));
  }

  /**
   * recv for a receiver that acknowledges: here the message is taken and giveBack() puts it back
   * first; for a path of another server, its home keeps it until ack() (end to end, issue 12).
   */
  async recvUnacked(path: string, opts?: CallOptions): Promise<Received> {
    const parts = this.#parts(path);
    const remote = this.#remote(parts);
    if (remote?.recvUnacked) return remote.recvUnacked(path, opts);
    const msg = await this.recv(path, opts);
    return { msg, acked: true, ack: async () => {}, giveBack: () => this.unrecv(path, msg) };
  }

  /** tryrecv for a receiver that acknowledges, as recvUnacked. */
  async tryrecvUnacked(path: string, opts?: CallOptions): Promise<Received> {
    const remote = this.#remote(this.#parts(path));
    if (remote?.tryrecvUnacked) return remote.tryrecvUnacked(path, opts);
    const msg = await this.tryrecv(path, opts);
    return { msg, acked: true, ack: async () => {}, giveBack: () => this.unrecv(path, msg) };
  }

  async tryrecv(path: string, opts?: CallOptions): Promise<Buffer> {
    return this.#verb(path, opts, 'tryrecv', [], undefined, (r) => r.tryrecv(path, opts));
  }

  /**
   * Puts a received message back first: its receiver vanished before it got the answer. For a
   * path on another server, the message goes back to its home.
   */
  async unrecv(path: string, msg: Buffer): Promise<void> {
    const parts = splitPath(path);
    const remote = parts[0] !== this.id ? this.route(parts[0]) : undefined;
    if (remote) {
      void remote.unrecv?.(path, msg).catch((e: Error) =>
        this.oplog.say(`cannot return a message to ${q(path)}: ${e.message}`),
      );
      return;
    }
    await this.tree.find(parts.slice(1))?.element?.verb('unrecv')?.([msg]);
    this.oplog.append({ op: 'unrecv', path, ok: true, result: { bytes: msg.length }, origin: { via: 'server' } });
  }

  async close(path: string, opts?: CallOptions): Promise<void> {
    return this.#verb(path, opts, 'close', [], undefined, (r) => r.close(path, opts));
  }

  async start(path: string, cmd: ProcCmd | DockerRun, opts?: CallOptions): Promise<void> {
    return this.#verb(path, opts, 'start', [cmd], cmd, (r) => r.start(path, cmd, opts));
  }

  async signal(path: string, sig: string, opts?: CallOptions): Promise<void> {
    return this.#verb(path, opts, 'signal', [sig], { sig }, (r) => r.signal(path, sig, opts));
  }

  async wait(path: string, opts?: CallOptions): Promise<unknown> {
    return this.#verb(path, opts, 'wait', [], undefined, (r) => r.wait(path, opts));
  }

  async env(path: string, opts?: CallOptions): Promise<string[]> {
    return this.#verb(path, opts, 'env', [], undefined, (r) => r.env(path, opts));
  }

  async openInput(path: string, opts?: CallOptions): Promise<InputWriter> {
    const w = await this.#verb(path, opts, 'openInput', [], undefined, (r) => r.openInput(path, opts), 'stdin');
    return {
      write: (d, o) => w.write(d, o),
      close: async () => {
        await w.close();
        this.oplog.append({ op: 'stdin-close', path, origin: opts?.origin, ok: true });
      },
    };
  }

  async openOutput(path: string, which: 'stdout' | 'stderr', opts?: CallOptions): Promise<OutputReader> {
    return this.#verb(path, opts, 'openOutput', [which], undefined, (r) => r.openOutput(path, which, opts), which);
  }

  async dnsSet(path: string, records: string, replace: boolean, opts?: CallOptions): Promise<void> {
    return this.#verb(path, opts, 'dnsSet', [records, replace], { records, replace }, (r) => r.dnsSet(path, records, replace, opts), 'dns-set');
  }
  async dnsUnset(path: string, name: string, opts?: CallOptions): Promise<void> {
    return this.#verb(path, opts, 'dnsUnset', [name], { name }, (r) => r.dnsUnset(path, name, opts), 'dns-unset');
  }
  async dnsRebind(path: string, addr: string, opts?: CallOptions): Promise<void> {
    return this.#verb(path, opts, 'dnsRebind', [addr], { addr }, (r) => r.dnsRebind(path, addr, opts), 'dns-rebind');
  }

  // ---- the server element ----

  async members(path: string, opts?: CallOptions): Promise<Member[]> {
    const parts = this.#parts(path);
    const remote = this.#remote(parts);
    if (remote) return remote.members(path, opts);
    return this.view.members().slice().sort((a, b) => byName({ name: a.id }, { name: b.id }));
  }

  async join(path: string, url: string, opts?: CallOptions): Promise<void> {
    const parts = this.#parts(path);
    const remote = this.#remote(parts);
    if (remote) return remote.join(path, url, opts);
    return this.#op('join', normal(parts), opts, { url }, async () => {
      if (!this.#mesh) throw E.notSupported('this server has no network port, so it cannot join a cluster (start it with -a, --if, -j or --discover)');
      await this.#mesh.join(url);
    });
  }

  async stop(path: string, opts?: CallOptions): Promise<void> {
    const parts = this.#parts(path);
    const remote = this.#remote(parts);
    if (remote) return remote.stop(path, opts);
    return this.#op('stop', normal(parts), opts, undefined, async () => {
      const stop = this.#onStop;
      if (!stop) throw E.notSupported('this server is not run by a daemon that can stop it');
      this.oplog.say(`Stopping on request from ${describeOrigin(opts)}`);
      setImmediate(stop);
    });
  }

  async log(path: string, opts?: CallOptions): Promise<Buffer> {
    const parts = this.#parts(path);
    const remote = this.#remote(parts);
    if (remote) return remote.log(path, opts);
    return this.oplog.read();
  }

  /** Server element: the daemon's report (src/node/stk.ts). */
  async stk(path: string, opts?: CallOptions): Promise<string> {
    const parts = this.#parts(path);
    const remote = this.#remote(parts);
    if (remote) return remote.stk(path, opts);
    return stackReport(this);
  }

  async disconnect(): Promise<void> {}

  /** Counts for the server element's peek. */
  counts(): { anchors: number; elements: Record<string, number> } {
    let anchors = 0;
    const elements: Record<string, number> = {};
    for (const a of this.tree.all()) {
      anchors++;
      if (a.element) elements[a.element.kind] = (elements[a.element.kind] ?? 0) + 1;
    }
    return { anchors, elements };
  }

  /** Shutdown: processes get SIGTERM then SIGKILL after the grace period; every element is scrubbed. */
  async shutdown(): Promise<void> {
    if (this.#stopping) return;
    this.#stopping = true;
    const all = [...this.tree.all()].filter((a) => a.element && a.element.kind !== 'server');
    await Promise.all(all.map(async (a) => {
      try {
        await a.element?.shutdown(this.graceMs);
      } catch (e) {
        this.oplog.say(`shutdown of ${q(a.path)}: ${(e as Error).message}`);
      }
    }));
    this.oplog.append({ op: 'shutdown', path: '/' + this.id, ok: true, origin: { via: 'server' } });
    this.oplog.close();
  }

  // ---- plumbing ----

  #parts(path: string): string[] {
    const parts = splitPath(path);
    if (parts.length === 0) throw E.badPath('the root holds no elements; name a server anchor');
    return parts;
  }

  /** The router's client for another server's path, or undefined for ours; unknown ids fail. */
  #remote(parts: string[]): Client | undefined {
    if (parts.length === 0 || parts[0] === this.id) return undefined;
    const c = this.route(parts[0]);
    if (!c) throw E.unknownServer(parts[0]);
    return c;
  }

  #context(a: Anchor): ElementContext {
    return {
      path: normal([this.id, ...splitPath(a.path)]),
      clock: this.clock,
      outputWindow: this.#outputWindow,
      view: this.view,
      log: (line) => this.oplog.say(line),
      detach: () => {
        if (!a.element) return;
        this.#op('scrub', normal([this.id, ...splitPath(a.path)]), { origin: { via: 'server' } }, { auto: true }, () => this.#detach(a)).catch(() => {});
      },
    };
  }

  /**
   * Runs a verb on the element at path through its kind's verb table, logged; a path on another
   * server goes to that server with `remote`, which passes every argument on.
   */
  async #verb<V extends VerbName>(
    path: string, opts: CallOptions | undefined, verb: V, args: VerbSigs[V]['args'], logArgs: unknown,
    remote: (c: Client) => Promise<VerbSigs[V]['result']>, op: string = verb,
  ): Promise<VerbSigs[V]['result']> {
    const parts = this.#parts(path);
    const r = this.#remote(parts);
    if (r) return remote(r);
    const p = normal(parts);
    return this.#op(op, p, opts, logArgs, async () => {
      const el = this.tree.find(parts.slice(1))?.element;
      if (!el) throw E.noElement(p);
      const fn = el.verb(verb);
      if (!fn) throw E.notKind(NOT_KIND[verb]);
      return fn(args, opts);
    });
  }

  async #op<T>(op: string, path: string, opts: CallOptions | undefined, args: unknown, fn: () => Promise<T>): Promise<T> {
    try {
      const r = await fn();
      this.oplog.append({ op, path, origin: opts?.origin, args, ok: true, result: summary(r) });
      return r;
    } catch (e) {
      const err: CircuitError = toCircuitError(e);
      this.oplog.append({ op, path, origin: opts?.origin, args, ok: false, error: { code: err.code, message: err.message } });
      if (err.code === 'EIO') this.oplog.say(`${op} ${q(path)}: ${err.message}`);
      throw err;
    }
  }
}

function normal(parts: string[]): string {
  return '/' + parts.join('/');
}

function byName(a: { name: string }, b: { name: string }): number {
  return a.name < b.name ? -1 : a.name > b.name ? 1 : 0;
}

/** What the log keeps of a result: the size of a message, nothing of other answers. */
function summary(r: unknown): unknown {
  return Buffer.isBuffer(r) ? { bytes: r.length } : undefined;
}

function describeOrigin(opts?: CallOptions): string {
  const o = opts?.origin;
  if (!o) return 'unknown';
  return [o.via, o.says && `(says ${o.says})`, o.peer, o.uid !== undefined ? `uid ${o.uid}` : '', o.pid !== undefined ? `pid ${o.pid}` : ''].filter(Boolean).join(' ');
}
