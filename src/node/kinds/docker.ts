/**
 * The docker element: one container, driven through the engine's HTTP API (dockerode) instead of
 * the original's `docker run` child process (docs/docker.md).
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
import { redactEnv } from '../oplog';
import { randomBytes } from 'node:crypto';
import os = require('node:os');
import { Writable } from 'node:stream';
import type Docker from 'dockerode';
import type { CallOptions, DockerRun, InputWriter, OutputReader } from '../../api/types';
import type { ElementContext, ElementState, KindModule } from '../element';
import { ProcessStdio, type StdinStream } from '../stdio';
import { decodeJson } from '../../api/cmd';
import { parseSignal } from '../signals';
import { AppError, E, type ErrorCode } from '../../kit/errors';
import { processRuns } from '../../kit/pid';

/** Containers made by this process and not yet removed: what removeAllContainers() removes. */
const registry = new Map<string, Docker.Container>();

/** Removes every container this process made (the daemon calls it on exit); returns how many. */
export async function removeAllContainers(): Promise<number> {
  const all = [...registry.values()];
  registry.clear();
  const res = await Promise.allSettled(all.map((c) => c.remove({ force: true, v: true })));
  return res.filter((r) => r.status === 'fulfilled' || isGone(r.reason)).length;
}

/**
 * Removes the containers that a server on this machine made and that outlived it (it was
 * killed with -9, or the machine lost power): labelled with this host's name and the pid of a
 * process that no longer runs. The daemon calls it at start with --docker. Returns how many.
 */
export async function removeOrphanContainers(engine: Docker): Promise<number> {
  const list = await engine.listContainers({ all: true, filters: { label: ['circuit.pid', `circuit.host=${os.hostname()}`] } });
  const dead = list.filter((c) => {
    const pid = Number(c.Labels['circuit.pid']);
    return Number.isInteger(pid) && pid > 0 && pid !== process.pid && !processRuns(pid);
  });
  const res = await Promise.allSettled(dead.map((c) => engine.getContainer(c.Id).remove({ force: true, v: true })));
  return res.filter((r) => r.status === 'fulfilled' || isGone(r.reason)).length;
}

/** Connects to the engine at DOCKER_HOST or /var/run/docker.sock and pings it (5 s bound). */
export async function connectEngine(timeoutMs = 5000): Promise<Docker> {
  let engine: Docker;
  try {
    // Loaded here, not at the top: a daemon without --docker never pays for dockerode. A plain
    // require, not import(): the bundled CLI runs in a vm.Script (src/cli/launch.ts), where a
    // dynamic import has no loader and fails.
    const Docker = require('dockerode') as typeof import('dockerode');
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
export function parseDockerRun(input: unknown): DockerRun {
  const v = decodeJson(input);
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

/** The engine this daemon uses, once `--docker` enabled the kind. */
let engineInUse: Docker | undefined;

export class DockerElement implements ElementState {
  readonly #ctx: ElementContext;
  readonly #engine: Docker;
  readonly stdio: ProcessStdio;
  #run: DockerRun | null = null;
  #container: Docker.Container | undefined;
  #name = '';
  #stream: NodeJS.ReadWriteStream | undefined;
  #final: unknown;

  private constructor(ctx: ElementContext, engine: Docker) {
    this.#ctx = ctx;
    this.#engine = engine;
    this.stdio = new ProcessStdio(ctx, () => this.scrub());
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

  async start(cmd: unknown, opts?: CallOptions): Promise<void> {
    const run = parseDockerRun(cmd); // it may come off the wire: check it again
    if (!run.Image.trim()) throw new AppError('EINVAL', 'mkdkr error: no image given');
    this.stdio.starting();
    this.#run = run;
    if (run.Lxc?.length) this.#ctx.log(`docker at ${this.#ctx.path}: Lxc options are not supported by the engine API and are ignored`);
    try {
      await this.#launch(run, opts?.signal);
    } catch (err) {
      this.stdio.failed();
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
    let stream: NodeJS.ReadWriteStream;
    try {
      await checkProgram(c, run);
      this.#checkAlive(signal);
      stream = (await c.attach({ stream: true, stdin: true, stdout: true, stderr: true, hijack: true })) as NodeJS.ReadWriteStream;
      this.#plumb(stream);
      this.#checkAlive(signal);
      await c.start();
      this.#checkAlive(signal);
    } catch (err) {
      await this.#removeContainer();
      if (this.stdio.phase === 'scrubbed') throw E.aborted();
      throw err instanceof AppError ? err : mkdkrError(err);
    }
    this.stdio.running(stream as StdinStream, run.Scrub);
    void this.#watchExit(c);
  }

  #checkAlive(signal: AbortSignal | undefined): void {
    if (this.stdio.phase === 'scrubbed') throw E.aborted();
    if (signal?.aborted) throw E.interrupted();
  }

  /** Demultiplexes the attach stream into the two buffers, pausing it while either is full. */
  #plumb(stream: NodeJS.ReadWriteStream): void {
    this.#stream = stream;
    const { stdout, stderr } = this.stdio;
    const pause = () => stream.pause();
    const resume = () => {
      if (!stdout.full && !stderr.full) stream.resume();
    };
    const sink = (which: 'stdout' | 'stderr') =>
      new Writable({
        write: (chunk: Buffer, _enc, done) => {
          this.stdio.push(which, chunk, pause, resume);
          done();
        },
      });
    this.#engine.modem.demuxStream(stream, sink('stdout'), sink('stderr'));
    const end = () => {
      // The container is done with the connection; our half would otherwise stay open forever.
      (stream as unknown as { destroy?: () => void }).destroy?.();
      this.stdio.end();
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
    if (this.stdio.phase === 'scrubbed') return;
    try {
      this.#final = this.#pick(await c.inspect());
    } catch {
      this.#final = { Id: c.id, Name: `/${this.#name}`, State: { Status: 'removed', Running: false, ExitCode: status ?? -1 }, Run: this.#run };
    }
    this.stdio.exited();
  }

  async peek(): Promise<unknown> {
    if (this.#final !== undefined) return this.#final;
    const phase = this.stdio.phase;
    if (!this.#container || phase === 'idle') return { Run: this.#run, State: { Status: phase, Running: false } };
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
    await this.stdio.wait(opts);
    return this.#final;
  }

  /** The container's environment as created: the Run's Env (the image's own comes on top in the container). */
  env(): string[] {
    if (!this.#run) throw E.notStarted();
    return [...(this.#run.Env ?? [])];
  }

  openInput(): InputWriter {
    return this.stdio.openInput();
  }

  openOutput(which: 'stdout' | 'stderr'): OutputReader | Promise<OutputReader> {
    return this.stdio.openOutput(which);
  }

  async signal(sig: string): Promise<void> {
    const s = engineSignal(sig);
    this.stdio.checkSignal();
    try {
      await this.#container!.kill({ signal: s });
    } catch (err) {
      const code = (err as { statusCode?: number }).statusCode;
      if (code === 409 || code === 404) throw E.finished();
      throw new AppError('EIO', `docker kill: ${messageOf(err)}`, { cause: err });
    }
  }

  /** Kills and removes the container (force); pending waits get `aborted`. */
  async scrub(): Promise<void> {
    if (this.stdio.phase === 'scrubbed') return;
    this.stdio.scrubbed();
    await this.#removeContainer();
  }

  /** Removes this element's container (the daemon is going down). */
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
}

/** The docker kind: one container (docs/docker.md); off unless the daemon runs with --docker. */
export const docker: KindModule<DockerElement, DockerRun | null> = {
  kind: 'docker',
  defaultSpec: null,
  parse: (spec) => (spec === null || spec === undefined ? null : parseDockerRun(spec)),
  describe: (run) => (run ? JSON.stringify(redactEnv(run)) : 'an idle container'),
  async make(run, ctx) {
    if (!engineInUse) throw E.notSupported('docker not enabled on this server');
    return DockerElement.make(run, ctx, engineInUse);
  },
  verbs: {
    start: (d, [run], opts) => d.start(run, opts),
    signal: (d, [sig]) => d.signal(sig),
    wait: (d, [], opts) => d.wait(opts),
    env: (d) => d.env(),
    openInput: (d) => d.openInput(),
    openOutput: (d, [which]) => d.openOutput(which),
  },
  optIn: {
    off: 'docker not enabled on this server',
    async enable(log) {
      engineInUse = await connectEngine();
      log(`Enabling docker elements, using ${process.env.DOCKER_HOST || '/var/run/docker.sock'}`);
      const orphans = await removeOrphanContainers(engineInUse).catch((e: Error) => (log(`cannot look for containers left by dead servers: ${e.message}`), 0));
      if (orphans) log(`Removed ${orphans} container(s) left by servers that died`);
      return async () => {
        const n = await removeAllContainers();
        if (n) log(`Removed ${n} container(s)`);
      };
    },
  },
};

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
    Labels: { 'circuit.anchor': anchor, 'circuit.pid': String(process.pid), 'circuit.host': os.hostname() },
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
