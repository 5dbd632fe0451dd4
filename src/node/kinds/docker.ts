/**
 * The docker element: one container, driven through the engine's HTTP API (dockerode) instead of
 * the original's `docker run` child process (REFERENCE.md §3.4).
 *
 * Mechanism. The container is created with an open stdin (StdinOnce, so closing our side closes
 * the container's), attached before it starts (one hijacked connection carries stdin one way and
 * the multiplexed stdout/stderr frames the other) and then started. The frames are demultiplexed
 * into two OutputBuffers as they arrive; when either buffer is above its window the connection is
 * paused, so a container whose output nobody reads blocks in its writes, as a proc does. A
 * long-poll `wait` on the engine marks the exit; its inspection is kept as the final peek. Every
 * container made here is in a module registry so the daemon can remove them all when it exits.
 *
 * Differences from the original, on purpose: stdin reaches the container; signals go to the
 * container (through its init, so `TERM` reaches the command even as PID 1); scrub kills and
 * removes the container (force) instead of leaving it running; a missing image or a failed
 * create is an error from make and leaves no container behind; `Lxc` is ignored (a warning).
 */
import { randomBytes } from 'node:crypto';
import { Writable } from 'node:stream';
import Docker from 'dockerode';
import type { CallOptions, DockerRun, InputWriter, OutputReader, ProcCmd } from '../../api/types';
import type { ElementContext, ProcLike } from '../element';
import { parseSignal } from '../signals';
import { OutputBuffer } from '../output-buffer';
import { AppError, E, type ErrorCode } from '../../kit/errors';
import { deferred, abortable, type Deferred } from '../../kit/deferred';

/** Containers made by this process and not yet removed: what removeAllContainers() removes. */
const registry = new Map<string, Docker.Container>();

/** Removes every container this process made (the daemon calls it on exit); returns how many. */
export async function removeAllContainers(): Promise<number> {
  const all = [...registry.values()];
  registry.clear();
  const res = await Promise.allSettled(all.map((c) => c.remove({ force: true, v: true })));
  return res.filter((r) => r.status === 'fulfilled' || isGone(r.reason)).length;
}

/** Connects to the engine at DOCKER_HOST or /var/run/docker.sock and pings it (5 s bound). */
export async function connectEngine(timeoutMs = 5000): Promise<Docker> {
  let engine: Docker;
  try {
    engine = process.env.DOCKER_HOST ? new Docker() : new Docker({ socketPath: '/var/run/docker.sock' });
  } catch (err) {
    throw new AppError('EINVAL', `cannot use docker: ${messageOf(err)}`, { cause: err });
  }
  const where = process.env.DOCKER_HOST || 'unix:///var/run/docker.sock';
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs);
  });
  try {
    await Promise.race([engine.ping(), late]);
  } catch (err) {
    throw new AppError('EHOSTDOWN', `cannot use docker: engine at ${where}: ${messageOf(err)}`, { cause: err });
  } finally {
    clearTimeout(timer);
  }
  return engine;
}

const RUN_FIELDS: Record<string, [keyof DockerRun, 'string' | 'int' | 'strings' | 'bool']> = {
  image: ['Image', 'string'], memory: ['Memory', 'int'], cpushares: ['CpuShares', 'int'],
  lxc: ['Lxc', 'strings'], volume: ['Volume', 'strings'], dir: ['Dir', 'string'],
  entry: ['Entry', 'string'], env: ['Env', 'strings'], path: ['Path', 'string'],
  args: ['Args', 'strings'], scrub: ['Scrub', 'bool'],
};

/** A Run with every field at its zero value. */
export function emptyRun(): DockerRun {
  return { Image: '', Memory: 0, CpuShares: 0, Lxc: null, Volume: null, Dir: '', Entry: '', Env: null, Path: '', Args: null, Scrub: false };
}

/** Parses the JSON Run: keys case-insensitive, unknown keys ignored, null means the zero value. */
export function parseDockerRun(json: string): DockerRun {
  let v: unknown;
  try {
    v = JSON.parse(json);
  } catch (err) {
    throw E.badCmd(messageOf(err));
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw E.badCmd('expected a JSON object');
  const run = emptyRun() as unknown as Record<string, unknown>;
  for (const [key, val] of Object.entries(v)) {
    const field = RUN_FIELDS[key.toLowerCase()];
    if (!field || val === null) continue;
    const [name, type] = field;
    const bad = () => E.badCmd(`${name} must be ${type === 'int' ? 'a non-negative integer' : type === 'strings' ? 'an array of strings' : `a ${type === 'bool' ? 'boolean' : 'string'}`}`);
    if (type === 'string' && typeof val !== 'string') throw bad();
    if (type === 'bool' && typeof val !== 'boolean') throw bad();
    if (type === 'int' && !(typeof val === 'number' && Number.isSafeInteger(val) && val >= 0)) throw bad();
    if (type === 'strings' && !(Array.isArray(val) && val.every((s) => typeof s === 'string'))) throw bad();
    run[name] = type === 'strings' ? [...(val as string[])] : val;
  }
  return run as unknown as DockerRun;
}

/** A signal as the engine takes it: the proc element's names (`SIGTERM` for `term`), `9` for 9. */
export function engineSignal(sig: string): string {
  const { name, num } = parseSignal(sig);
  return /^\s*\d+\s*$/.test(sig) ? String(num) : name;
}

/** The keys of the engine's inspection that peek shows, as the original's subset. */
const PEEK_KEYS = ['Id', 'Created', 'Path', 'Args', 'Config', 'State', 'Image', 'NetworkSettings', 'ResolvConfPath',
  'HostnamePath', 'HostsPath', 'Name', 'Driver', 'Mounts', 'HostConfig'];

type Phase = 'idle' | 'starting' | 'running' | 'exited' | 'scrubbed';

export class DockerElement implements ProcLike {
  readonly kind = 'docker' as const;
  readonly #ctx: ElementContext;
  readonly #engine: Docker;
  #phase: Phase = 'idle';
  #run: DockerRun | null = null;
  #container: Docker.Container | undefined;
  #name = '';
  #stream: NodeJS.ReadWriteStream | undefined;
  readonly #stdout = new OutputBuffer('stdout');
  readonly #stderr = new OutputBuffer('stderr');
  /** Open stdin writers; stdin closes when the count falls back to 0. */
  #writers = 0;
  #stdinClosed = false;
  readonly #exit: Deferred<unknown> = deferred<unknown>();
  #final: unknown;
  #detachCbs: Array<() => void> = [];

  private constructor(ctx: ElementContext, engine: Docker) {
    this.#ctx = ctx;
    this.#engine = engine;
    this.#exit.promise.catch(() => {});
  }

  /** Makes the element; with a run, creates and starts the container (mkdkr error: … on failure). */
  static async make(run: DockerRun | null, ctx: ElementContext, engine: Docker, opts?: CallOptions): Promise<DockerElement> {
    const el = new DockerElement(ctx, engine);
    if (run) await el.start(run, opts);
    return el;
  }

  /** The run this element was started with (null while idle), for the FS `cmd` file. */
  get run(): DockerRun | null {
    return this.#run;
  }
  /** The container's engine id ('' until created). */
  get containerId(): string {
    return this.#container?.id ?? '';
  }
  /** The container's name, `via-circuit-<16 hex>` ('' until created). */
  get containerName(): string {
    return this.#name;
  }

  /** True once the container has started (running or exited, not scrubbed). */
  get #live(): boolean {
    return this.#phase === 'running' || this.#phase === 'exited';
  }

  onDetach(cb: () => void): void {
    this.#detachCbs.push(cb);
  }

  async start(cmd: ProcCmd | DockerRun, opts?: CallOptions): Promise<void> {
    if (this.#phase === 'scrubbed') throw E.aborted();
    if (this.#phase !== 'idle') throw E.procStarted();
    const run = { ...emptyRun(), ...(cmd as DockerRun) };
    if (!run.Image.trim()) throw new AppError('EINVAL', 'mkdkr error: no image given');
    this.#phase = 'starting';
    this.#run = run;
    if (run.Lxc?.length) this.#ctx.log(`docker at ${this.#ctx.path}: Lxc options are not supported by the engine API and are ignored`);
    try {
      await this.#launch(run, opts?.signal);
    } catch (err) {
      if (this.#phase === 'starting') this.#phase = 'idle';
      this.#run = null;
      throw err;
    }
  }

  async #launch(run: DockerRun, signal: AbortSignal | undefined): Promise<void> {
    this.#name = `via-circuit-${randomBytes(8).toString('hex')}`;
    let c: Docker.Container;
    try {
      c = await this.#engine.createContainer(containerSpec(run, this.#name, this.#ctx.path));
    } catch (err) {
      throw mkdkrError(err);
    }
    registry.set(c.id, c);
    this.#container = c;
    this.#ctx.log(`Starting container ${this.#name} (${c.id.slice(0, 12)}) from ${run.Image} at ${this.#ctx.path}`);
    try {
      await checkProgram(c, run);
      this.#checkAlive(signal);
      const stream = (await c.attach({ stream: true, stdin: true, stdout: true, stderr: true, hijack: true })) as NodeJS.ReadWriteStream;
      this.#plumb(stream);
      this.#checkAlive(signal);
      await c.start();
      this.#checkAlive(signal);
    } catch (err) {
      await this.#removeContainer();
      if (this.#phase === 'scrubbed') throw E.aborted();
      throw err instanceof AppError ? err : mkdkrError(err);
    }
    this.#phase = 'running';
    if (this.#stdinClosed) this.#stream?.end();
    void this.#watchExit(c);
  }

  #checkAlive(signal: AbortSignal | undefined): void {
    if (this.#phase === 'scrubbed') throw E.aborted();
    if (signal?.aborted) throw E.interrupted();
  }

  /** Demultiplexes the attach stream into the two buffers, pausing it while either is full. */
  #plumb(stream: NodeJS.ReadWriteStream): void {
    this.#stream = stream;
    const resume = () => {
      if (!this.#stdout.full && !this.#stderr.full) stream.resume();
    };
    const sink = (buf: OutputBuffer) =>
      new Writable({
        write: (chunk: Buffer, _enc, done) => {
          if (!buf.push(chunk)) {
            stream.pause();
            buf.onDrain(resume);
          }
          done();
        },
      });
    this.#engine.modem.demuxStream(stream, sink(this.#stdout), sink(this.#stderr));
    const end = () => {
      this.#stdout.end();
      this.#stderr.end();
      // The container is done with the connection; our half would otherwise stay open forever.
      (stream as unknown as { destroy?: () => void }).destroy?.();
      this.#maybeAutoScrub();
    };
    stream.on('end', end);
    stream.on('close', end);
    stream.on('error', (err: Error) => {
      this.#ctx.log(`docker at ${this.#ctx.path}: attach stream: ${err.message}`);
      end();
    });
  }

  /** Waits for the container's exit on the engine, then keeps its inspection as the final peek. */
  async #watchExit(c: Docker.Container): Promise<void> {
    let status: number | undefined;
    try {
      status = ((await c.wait()) as { StatusCode?: number }).StatusCode;
    } catch {
      // removed under us (scrub, or by hand): inspect below tells what it can.
    }
    if (this.#phase === 'scrubbed') return;
    try {
      this.#final = this.#pick(await c.inspect());
    } catch {
      this.#final = { Id: c.id, Name: `/${this.#name}`, State: { Status: 'removed', Running: false, ExitCode: status ?? -1 }, Run: this.#run };
    }
    this.#phase = 'exited';
    this.#exit.resolve(this.#final);
    this.#maybeAutoScrub();
  }

  async peek(): Promise<unknown> {
    if (this.#final !== undefined) return this.#final;
    if (!this.#container || this.#phase === 'idle') return { Run: this.#run, State: { Status: this.#phase, Running: false } };
    try {
      return this.#pick(await this.#container.inspect());
    } catch (err) {
      if (this.#final !== undefined) return this.#final;
      throw new AppError(isGone(err) ? 'ENOENT' : 'EIO', `docker inspect: ${messageOf(err)}`, { cause: err });
    }
  }

  /** The engine's keys we show, as it gives them, plus the Run (the one key of ours, as proc's Cmd). */
  #pick(info: object): Record<string, unknown> {
    const all = info as Record<string, unknown>;
    const out: Record<string, unknown> = {};
    for (const k of PEEK_KEYS) if (k in all) out[k] = all[k];
    out.Run = this.#run;
    return out;
  }

  async wait(opts?: CallOptions): Promise<unknown> {
    if (this.#phase === 'scrubbed') throw E.aborted();
    if (!this.#live) throw E.noProcess();
    return abortable(this.#exit.promise, opts?.signal, () => E.interrupted());
  }

  /** The exit status as a shell reports it (128+n for signal n, through the container's init). */
  exitStatus(): number | null {
    const st = (this.#final as { State?: { ExitCode?: number } } | undefined)?.State;
    return typeof st?.ExitCode === 'number' ? st.ExitCode : null;
  }

  async signal(sig: string): Promise<void> {
    const s = engineSignal(sig);
    if (this.#phase === 'idle' || this.#phase === 'starting' || !this.#container) throw E.noProcess();
    if (this.#phase !== 'running') throw E.finished();
    try {
      await this.#container.kill({ signal: s });
    } catch (err) {
      const code = (err as { statusCode?: number }).statusCode;
      if (code === 409 || code === 404) throw E.finished();
      throw new AppError('EIO', `docker kill: ${messageOf(err)}`, { cause: err });
    }
  }

  openInput(): InputWriter {
    if (!this.#live) throw E.noProcess();
    if (this.#stdinClosed) throw E.stdinClosed();
    this.#writers++;
    let open = true;
    return {
      write: async (data: Buffer, opts?: CallOptions) => {
        if (!open) throw E.stdinClosed();
        await this.#write(data, opts?.signal);
      },
      close: async () => {
        if (!open) return;
        open = false;
        if (--this.#writers === 0) this.#closeStdin();
      },
    };
  }

  /** Writes once the attach stream has room, so an aborted write has written nothing. */
  async #write(data: Buffer, signal: AbortSignal | undefined): Promise<void> {
    const s = this.#stream as (NodeJS.ReadWriteStream & { writableNeedDrain?: boolean; writable?: boolean }) | undefined;
    if (!s || this.#stdinClosed || s.writable === false) throw E.stdinClosed();
    if (s.writableNeedDrain) {
      await abortable(new Promise<void>((resolve) => {
        const done = () => {
          s.off('drain', done);
          s.off('close', done);
          resolve();
        };
        s.on('drain', done);
        s.on('close', done);
      }), signal, () => E.interrupted());
    }
    if (this.#stdinClosed || (s.writable as boolean | undefined) === false) throw E.stdinClosed();
    if (data.length) s.write(data);
  }

  #closeStdin(): void {
    if (this.#stdinClosed) return;
    this.#stdinClosed = true;
    if (this.#phase === 'running' || this.#phase === 'exited') this.#stream?.end();
  }

  /** A lease on stdout or stderr; after each read, Scrub checks whether the output is all read. */
  openOutput(which: 'stdout' | 'stderr'): OutputReader {
    if (!this.#live) throw E.noProcess();
    const lease = (which === 'stdout' ? this.#stdout : this.#stderr).acquire();
    const read = lease.read.bind(lease);
    lease.read = async (max: number, opts?: CallOptions) => {
      const b = await read(max, opts);
      this.#maybeAutoScrub();
      return b;
    };
    return lease;
  }

  /** Kills and removes the container (force); pending waits get `aborted`. */
  async scrub(): Promise<void> {
    if (this.#phase === 'scrubbed') return;
    this.#phase = 'scrubbed';
    this.#exit.reject(E.aborted());
    await this.#removeContainer();
    this.#stdout.end();
    this.#stderr.end();
  }

  /** Removes this element's container without detaching it (the daemon is going down). */
  async shutdown(): Promise<void> {
    await this.#removeContainer();
  }

  async #removeContainer(): Promise<void> {
    const c = this.#container;
    if (!c || !registry.has(c.id)) return;
    registry.delete(c.id);
    this.#stream?.end();
    try {
      await c.remove({ force: true, v: true });
    } catch (err) {
      if (!isGone(err)) this.#ctx.log(`docker at ${this.#ctx.path}: remove ${this.#name}: ${messageOf(err)}`);
    }
  }

  /** With Scrub: once the container exited and both outputs were read to the end, detach. */
  #maybeAutoScrub(): void {
    if (!this.#run?.Scrub || this.#phase !== 'exited') return;
    for (const b of [this.#stdout, this.#stderr]) if (!b.ended || b.buffered > 0) return;
    void this.scrub().then(() => {
      this.#ctx.detach();
      for (const cb of this.#detachCbs) cb();
    });
  }
}

/** The engine's create body for a Run. */
function containerSpec(run: DockerRun, name: string, anchor: string): Docker.ContainerCreateOptions {
  const volumes = run.Volume ?? [];
  const path = run.Path.trim();
  const cmd = path ? [path, ...(run.Args ?? [])] : run.Args?.length ? run.Args : undefined;
  return {
    name,
    Image: run.Image.trim(),
    Cmd: cmd,
    Entrypoint: run.Entry ? [run.Entry] : undefined,
    Env: run.Env ?? undefined,
    WorkingDir: run.Dir || undefined,
    Labels: { 'circuit.anchor': anchor, 'circuit.pid': String(process.pid) },
    Volumes: Object.fromEntries(volumes.filter((v) => !v.includes(':')).map((v) => [v, {}])),
    OpenStdin: true,
    StdinOnce: true,
    AttachStdin: true,
    AttachStdout: true,
    AttachStderr: true,
    Tty: false,
    HostConfig: {
      Binds: volumes.filter((v) => v.includes(':')),
      Memory: run.Memory || undefined,
      CpuShares: run.CpuShares || undefined,
      Init: true,
    },
  };
}

/**
 * The container's init would turn a missing program into exit 127; an absolute one is looked up
 * in the created container's file system first, so that make fails instead, like mkproc.
 */
async function checkProgram(c: Docker.Container, run: DockerRun): Promise<void> {
  const argv0 = run.Entry || run.Path.trim();
  if (!argv0.startsWith('/')) return;
  try {
    const res = (await c.infoArchive({ path: argv0 })) as { destroy?: () => void } | undefined;
    res?.destroy?.(); // a HEAD answer: nothing to read, and an unread stream would pin its socket
  } catch (err) {
    if (isGone(err)) throw new AppError('ENOENT', `mkdkr error: exec: ${JSON.stringify(argv0)}: no such file or directory`);
  }
}


function messageOf(err: unknown): string {
  const e = err as { json?: { message?: string }; message?: string };
  const m = e?.json?.message ?? e?.message ?? String(err);
  return m.trim();
}

function isGone(err: unknown): boolean {
  return (err as { statusCode?: number })?.statusCode === 404;
}

/** An engine failure while making the container, as `mkdkr error: <the engine's reason>`. */
function mkdkrError(err: unknown): AppError {
  const status = (err as { statusCode?: number }).statusCode;
  const code: ErrorCode = status === 404 ? 'ENOENT' : status === 400 ? 'EINVAL' : status === 409 ? 'EEXIST' : 'EIO';
  return new AppError(code, `mkdkr error: ${messageOf(err)}`, { cause: err });
}
