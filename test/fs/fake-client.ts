import type { CallOptions, Client, Entry, InputWriter, Kind, Member, OutputReader } from '../../src/api/types';
import { AppError, CircuitError, E } from '../../src/kit/errors';

/**
 * An in-memory Client for the FS unit tests: anchors, channels with the API's abort guarantees
 * (an aborted recv consumed nothing, an aborted send enqueued nothing), scriptable processes
 * (the test feeds their output and exit), DNS records and subscription events. Every call is
 * recorded in `calls` so tests can check that probes did nothing.
 */
export const SERVER = 'X0123456789abcdef';

interface Waiter<T> { resolve(v: T): void; reject(e: unknown): void }

class FakeChan {
  cap = 0;
  closed = false;
  used = false;
  buffered: Buffer[] = [];
  receivers: Array<Waiter<Buffer>> = [];
  senders: Array<{ msg: Buffer } & Waiter<void>> = [];
  numSend = 0;
  numRecv = 0;
}

class FakeProc {
  cmd: unknown = null;
  out: Record<'stdout' | 'stderr', { data: Buffer; ended: boolean; leased: boolean; wake: Array<() => void> }> = {
    stdout: { data: Buffer.alloc(0), ended: false, leased: false, wake: [] },
    stderr: { data: Buffer.alloc(0), ended: false, leased: false, wake: [] },
  };
  stdin: Buffer[] = [];
  writers = 0;
  stdinClosed = false;
  signals: string[] = [];
  exit: { ExitCode: number; Signal: string | null } | null = null;
  waiters: Array<() => void> = [];
}

export class FakeClient implements Client {
  readonly calls: string[] = [];
  readonly anchors = new Map<string, { kind: Kind | null; el: unknown }>([[`/${SERVER}`, { kind: 'server', el: null }]]);

  readonly #subWaiters: Array<Waiter<Buffer>> = [];
  home = async () => ({ id: SERVER, url: 'circuit://127.0.0.1:1/1/Q0' });

  #rec(what: string) { this.calls.push(what); }

  #el<T>(path: string, kind: Kind | Kind[]): T {
    const a = this.anchors.get(path);
    const kinds = Array.isArray(kind) ? kind : [kind];
    if (!a || !a.kind || !kinds.includes(a.kind)) throw E.notKind(`not a ${kinds.join(' or ')}`);
    return a.el as T;
  }

  async list(path: string): Promise<Entry[]> {
    this.#rec(`list ${path}`);
    if (path === '/') return [{ name: SERVER, path: `/${SERVER}`, kind: 'server' }];
    if (!this.anchors.has(path)) throw new AppError('ENOENT', `no anchor ${path}`);
    const out: Entry[] = [];
    for (const [p, a] of this.anchors) {
      if (p.startsWith(path + '/') && !p.slice(path.length + 1).includes('/')) out.push({ name: p.slice(path.length + 1), path: p, kind: a.kind });
    }
    return out.sort((x, y) => x.name.localeCompare(y.name));
  }
  async stat(path: string) {
    const a = this.anchors.get(path);
    if (!a) throw new AppError('ENOENT', `no anchor ${path}`);
    return { kind: a.kind, children: 0 };
  }
  async hold(path: string) {
    this.#rec(`hold ${path}`);
    const parts = path.split('/').filter(Boolean);
    for (let i = 2; i <= parts.length; i++) {
      const p = '/' + parts.slice(0, i).join('/');
      if (!this.anchors.has(p)) this.anchors.set(p, { kind: null, el: null });
    }
  }
  async unhold(path: string) {
    this.#rec(`unhold ${path}`);
    const a = this.anchors.get(path);
    if (!a) throw new AppError('ENOENT', `no anchor ${path}`);
    if (a.kind || [...this.anchors.keys()].some((p) => p.startsWith(path + '/'))) throw new AppError('ENOTEMPTY', 'anchor not empty');
    this.anchors.delete(path);
  }
  async peek(path: string): Promise<unknown> {
    this.#rec(`peek ${path}`);
    const a = this.anchors.get(path);
    if (!a) throw new AppError('ENOENT', `no anchor ${path}`);
    if (a.kind === 'chan') {
      const c = a.el as FakeChan;
      return { Cap: c.cap, Closed: c.closed, Aborted: false, NumSend: c.numSend, NumRecv: c.numRecv };
    }
    if (a.kind === 'proc' || a.kind === 'docker') {
      const p = a.el as FakeProc;
      return { Cmd: p.cmd, Phase: p.exit ? 'exited' : p.cmd ? 'running' : 'idle', ...(p.exit ?? {}) };
    }
    if (a.kind === 'dns') return a.el;
    if (a.kind === 'server') return { Addr: 'circuit://127.0.0.1:1/1/Q0' };
    return a.kind ? { Source: a.kind.slice(1), Pending: (a.el as Buffer[]).length, Closed: false } : null;
  }
  async make(path: string, kind: Kind, spec: unknown) {
    this.#rec(`make ${path} ${kind} ${JSON.stringify(spec)}`);
    await this.hold(path);
    const a = this.anchors.get(path)!;
    if (a.kind) throw E.busyAnchor();
    a.kind = kind;
    if (kind === 'chan') { a.el = new FakeChan(); (a.el as FakeChan).cap = (spec as { cap: number } | null)?.cap ?? 0; }
    else if (kind === 'proc' || kind === 'docker') a.el = new FakeProc();
    else if (kind === 'dns') a.el = { Address: '127.0.0.1:5353', Records: {} as Record<string, string[]> };
    else a.el = [] as Buffer[];
  }
  async scrub(path: string) {
    this.#rec(`scrub ${path}`);
    const a = this.anchors.get(path);
    if (!a || !a.kind) throw E.noElement(path);
    a.kind = null;
    a.el = null;
  }

  async setCap(path: string, cap: number) {
    this.#rec(`setCap ${path} ${cap}`);
    const c = this.#el<FakeChan>(path, 'chan');
    if (c.used) throw E.capInUse();
    c.cap = cap;
  }
  send(path: string, msg: Buffer, opts?: CallOptions): Promise<void> {
    this.#rec(`send ${path} ${JSON.stringify(msg.toString())}`);
    const c = this.#el<FakeChan>(path, 'chan');
    if (c.closed) return Promise.reject(E.chanClosed());
    c.used = true;
    const r = c.receivers.shift();
    if (r) { c.numSend++; c.numRecv++; r.resolve(msg); return Promise.resolve(); }
    if (c.buffered.length < c.cap) { c.numSend++; c.buffered.push(msg); return Promise.resolve(); }
    return new Promise<void>((resolve, reject) => {
      const s = { msg, resolve: () => { c.numSend++; resolve(); }, reject };
      c.senders.push(s);
      onAbort(opts, () => { c.senders.splice(c.senders.indexOf(s), 1); reject(E.interrupted()); });
    });
  }
  recv(path: string, opts?: CallOptions): Promise<Buffer> {
    this.#rec(`recv ${path}`);
    const a = this.anchors.get(path);
    if (a?.kind === '@join' || a?.kind === '@leave') {
      const q = a.el as Buffer[];
      if (q.length) return Promise.resolve(q.shift()!);
      return new Promise<Buffer>((resolve, reject) => {
        const w = { resolve, reject };
        this.#subWaiters.push(w);
        onAbort(opts, () => { this.#subWaiters.splice(this.#subWaiters.indexOf(w), 1); reject(E.interrupted()); });
      });
    }
    const c = this.#el<FakeChan>(path, 'chan');
    c.used = true;
    const b = c.buffered.shift();
    if (b) {
      c.numRecv++;
      const s = c.senders.shift();
      if (s) { c.buffered.push(s.msg); s.resolve(); }
      return Promise.resolve(b);
    }
    const s = c.senders.shift();
    if (s) { c.numRecv++; s.resolve(); return Promise.resolve(s.msg); }
    if (c.closed) return Promise.reject(E.chanClosed());
    return new Promise<Buffer>((resolve, reject) => {
      const w = { resolve, reject };
      c.receivers.push(w);
      onAbort(opts, () => { c.receivers.splice(c.receivers.indexOf(w), 1); reject(E.interrupted()); });
    });
  }
  async trysend(path: string, msg: Buffer) {
    const c = this.#el<FakeChan>(path, 'chan');
    if (!c.closed && !c.receivers.length && c.buffered.length >= c.cap) throw E.wouldBlock('channel has no room and no waiting receiver');
    return this.send(path, msg);
  }
  async tryrecv(path: string) {
    const a = this.anchors.get(path);
    const empty = a?.kind === 'chan' ? !(a.el as FakeChan).buffered.length && !(a.el as FakeChan).senders.length && !(a.el as FakeChan).closed
      : a?.kind === '@join' || a?.kind === '@leave' ? !(a.el as Buffer[]).length : false;
    if (empty) throw E.wouldBlock('channel is empty');
    return this.recv(path);
  }
  async close(path: string) {
    this.#rec(`close ${path}`);
    const c = this.#el<FakeChan>(path, 'chan');
    if (c.closed) throw E.chanAlreadyClosed();
    c.closed = true;
    for (const r of c.receivers.splice(0)) r.reject(E.chanClosed());
  }

  async start(path: string, cmd: unknown) {
    this.#rec(`start ${path} ${JSON.stringify(cmd)}`);
    const p = this.#el<FakeProc>(path, ['proc', 'docker']);
    if (p.cmd) throw E.procStarted();
    if (!(cmd as { Path?: string }).Path) throw E.badCmd('no Path');
    p.cmd = cmd;
  }
  async signal(path: string, sig: string) {
    this.#rec(`signal ${path} ${sig}`);
    const p = this.#el<FakeProc>(path, ['proc', 'docker']);
    if (!/^(SIG)?[A-Z]+$|^\d+$/i.test(sig)) throw E.badSignal(sig);
    p.signals.push(sig);
  }
  wait(path: string, opts?: CallOptions): Promise<unknown> {
    this.#rec(`wait ${path}`);
    const p = this.#el<FakeProc>(path, ['proc', 'docker']);
    if (p.exit) return this.peek(path);
    return new Promise((resolve, reject) => {
      const w = () => resolve(this.peek(path));
      p.waiters.push(w);
      onAbort(opts, () => { p.waiters.splice(p.waiters.indexOf(w), 1); reject(E.interrupted()); });
    });
  }
  async openInput(path: string): Promise<InputWriter> {
    this.#rec(`openInput ${path}`);
    const p = this.#el<FakeProc>(path, ['proc', 'docker']);
    if (p.stdinClosed) throw E.stdinClosed();
    p.writers++;
    let open = true;
    return {
      write: async (data) => { p.stdin.push(Buffer.from(data)); },
      close: async () => { if (open && --p.writers === 0) p.stdinClosed = true; open = false; },
    };
  }
  async openOutput(path: string, which: 'stdout' | 'stderr'): Promise<OutputReader> {
    this.#rec(`openOutput ${path} ${which}`);
    const s = this.#el<FakeProc>(path, ['proc', 'docker']).out[which];
    if (s.leased) throw E.readerBusy(which);
    s.leased = true;
    // Offsets as the real lease: reading at N drops the bytes before N; the rest stays.
    let acked = 0;
    let cursor = 0;
    const ack = (at: number) => {
      s.data = s.data.subarray(Math.max(0, at - acked));
      acked = Math.max(acked, at);
    };
    return {
      read: async (max, opts, at = cursor) => {
        ack(at);
        while (s.data.length === 0 && !s.ended) {
          await new Promise<void>((resolve, reject) => {
            s.wake.push(resolve);
            onAbort(opts, () => { s.wake.splice(s.wake.indexOf(resolve), 1); reject(E.interrupted()); });
          });
        }
        if (s.data.length === 0) return null;
        const out = s.data.subarray(0, max);
        cursor = at + out.length;
        return Buffer.from(out);
      },
      ack,
      release: async (at = cursor) => { ack(at); s.leased = false; },
      abandon: () => { s.leased = false; },
    };
  }

  async dnsSet(path: string, records: string, replace: boolean) {
    this.#rec(`dnsSet ${path} ${JSON.stringify(records)} ${replace}`);
    const d = this.#el<{ Records: Record<string, string[]> }>(path, 'dns');
    if (replace) d.Records = {};
    for (const rr of records.split('\n').filter(Boolean)) {
      const name = rr.split(/\s+/)[0];
      if (!name.endsWith('.')) throw new AppError('EINVAL', `bad record ${rr}`);
      (d.Records[name] ??= []).push(rr);
    }
  }
  async dnsUnset(path: string, name: string) {
    this.#rec(`dnsUnset ${path} ${name}`);
    delete this.#el<{ Records: Record<string, string[]> }>(path, 'dns').Records[name];
  }
  async dnsRebind(path: string, addr: string) {
    this.#rec(`dnsRebind ${path} ${addr}`);
    this.#el<{ Address: string }>(path, 'dns').Address = addr;
  }

  async members(path: string): Promise<Member[]> {
    this.#rec(`members ${path}`);
    return [{ id: SERVER, url: 'circuit://127.0.0.1:1/1/Q0', state: 'alive' }];
  }
  async join(path: string, url: string) { this.#rec(`join ${path} ${url}`); }
  async stop(path: string) { this.#rec(`stop ${path}`); }
  async env(path: string) {
    const p = this.#el<FakeProc>(path, ['proc', 'docker']);
    return ((p.cmd as { Env?: string[] } | null)?.Env ?? []).slice();
  }
  async stk(path: string) { this.#rec(`stk ${path}`); return '== main stack\n•••\n'; }
  async log(path: string) { this.#rec(`log ${path}`); return Buffer.from('{"seq":1}\n'); }
  async disconnect() {}

  // ---- test controls ----
  /** Appends output to a fake process's stream, or ends it with null. */
  emit(path: string, which: 'stdout' | 'stderr', data: string | null) {
    const s = this.#el<FakeProc>(path, ['proc', 'docker']).out[which];
    if (data === null) s.ended = true;
    else s.data = Buffer.concat([s.data, Buffer.from(data)]);
    for (const w of s.wake.splice(0)) w();
  }
  exit(path: string, code: number, signal: string | null = null) {
    const p = this.#el<FakeProc>(path, ['proc', 'docker']);
    p.exit = { ExitCode: code, Signal: signal };
    for (const w of p.waiters.splice(0)) w();
  }
  event(path: string, line: string) {
    const w = this.#subWaiters.shift();
    if (w) return w.resolve(Buffer.from(line + '\n'));
    (this.anchors.get(path)!.el as Buffer[]).push(Buffer.from(line + '\n'));
  }
  proc(path: string): FakeProc { return this.#el<FakeProc>(path, ['proc', 'docker']); }
  chan(path: string): FakeChan { return this.#el<FakeChan>(path, 'chan'); }
}

function onAbort(opts: CallOptions | undefined, fn: () => void) {
  const s = opts?.signal;
  if (!s) return;
  if (s.aborted) return fn();
  s.addEventListener('abort', fn, { once: true });
}

export { CircuitError };
