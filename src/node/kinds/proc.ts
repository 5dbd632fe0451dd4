import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { ProcLike, ElementContext } from '../element';
import type { CallOptions, InputWriter, OutputReader, ProcCmd } from '../../api/types';
import { AppError, E } from '../../kit/errors';
import { deferred } from '../../kit/deferred';
import { OutputBuffer } from '../output-buffer';
import { parseSignal, signalNumber } from '../signals';
import { parseProcCmd } from '../../api/cmd';

/**
 * A process element (REFERENCE.md §3.1, with the decisions of issue 2): output flows as it
 * arrives; wait completes at exit whether or not stdin was closed; stdout and stderr have one
 * reader at a time and keep what a reader left; a Path without a slash is looked up in PATH; exec
 * failure fails the start; scrub of a running process is EBUSY. Processes run in their own
 * process group so shutdown can end them with everything they started.
 */
export type Phase = 'idle' | 'running' | 'exited' | 'signaled' | 'unknown';

export interface ProcStat {
  Cmd: ProcCmd | null;
  Phase: Phase;
  Pid: number | null;
  ExitCode: number | null;
  Signal: string | null;
  Exit: { Body: string } | null;
}

export class Proc implements ProcLike {
  readonly kind = 'proc' as const;
  #cmd: ProcCmd | null = null;
  #child: ChildProcess | undefined;
  #phase: Phase = 'idle';
  #exitCode: number | null = null;
  #signal: string | null = null;
  #exit: { Body: string } | null = null;
  #exited = deferred<void>();
  #scrubbed = false;
  #writers = 0;
  #starting = false;
  #stdinClosed = false;
  readonly stdout: OutputBuffer;
  readonly stderr: OutputBuffer;

  constructor(
    readonly ctx: ElementContext,
    window?: number,
  ) {
    this.stdout = new OutputBuffer('stdout', window);
    this.stderr = new OutputBuffer('stderr', window);
    this.#exited.promise.catch(() => {});
  }

  get running(): boolean {
    return this.#phase === 'running';
  }
  get pid(): number | undefined {
    return this.#child?.pid;
  }

  async start(input: ProcCmd): Promise<void> {
    if (this.#cmd || this.#starting) throw E.procStarted();
    const cmd = parseProcCmd(input); // it may come off the wire: check it again
    this.#starting = true;
    try {
      await this.#spawn(cmd);
    } finally {
      this.#starting = false;
    }
  }

  async #spawn(cmd: ProcCmd): Promise<void> {
    const env = cmd.Env ? envObject(cmd.Env) : process.env;
    const file = resolveExecutable(cmd.Path, env.PATH ?? '', cmd.Dir);
    const child = spawn(file, cmd.Args ?? [], {
      argv0: cmd.Path,
      env: cmd.Env ? envObject(cmd.Env) : process.env,
      cwd: cmd.Dir || undefined,
      detached: true,
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    await new Promise<void>((resolve, reject) => {
      child.once('spawn', resolve);
      child.once('error', (e: NodeJS.ErrnoException) => {
        const why = e.code === 'ENOENT' && cmd.Dir && !fs.existsSync(cmd.Dir) ? `chdir ${cmd.Dir}: no such file or directory` : describeSpawnError(e);
        reject(new AppError(e.code === 'EACCES' ? 'EACCES' : 'ENOENT', `exec error: fork/exec ${cmd.Path}: ${why}`, { cause: e }));
      });
    });
    this.#cmd = cmd;
    this.#child = child;
    this.#phase = 'running';
    this.#pipe(child.stdout!, this.stdout);
    this.#pipe(child.stderr!, this.stderr);
    child.stdin!.on('error', () => {}); // EPIPE after the process exits is not our failure
    child.on('exit', (code, sig) => {
      this.#exitCode = code;
      this.#signal = sig;
      if (sig) {
        this.#phase = 'signaled';
        this.#exit = { Body: `signal: ${signalText(sig)}` };
      } else {
        this.#phase = 'exited';
        this.#exit = code === 0 ? null : { Body: `exit status ${code}` };
      }
      this.#exited.resolve();
      this.#maybeDetach();
    });
  }

  #pipe(src: NodeJS.ReadableStream & { pause(): void; resume(): void }, dst: OutputBuffer): void {
    src.on('data', (c: Buffer) => {
      if (!dst.push(c)) {
        src.pause();
        dst.onDrain(() => src.resume());
      }
    });
    src.on('end', () => {
      dst.end();
      this.#maybeDetach();
    });
    src.on('error', () => dst.end());
  }

  /** With Scrub, the element goes once the process has exited and its output has been read. */
  #maybeDetach(): void {
    if (!this.#cmd?.Scrub || this.running || this.#scrubbed) return;
    const drained = (b: OutputBuffer) => b.ended && b.buffered === 0;
    if (drained(this.stdout) && drained(this.stderr)) this.ctx.detach();
  }

  async signal(sig: string): Promise<void> {
    const { name } = parseSignal(sig);
    if (!this.#child) throw E.noProcess();
    if (!this.running) throw E.finished();
    try {
      process.kill(this.#child.pid!, name);
    } catch (e) {
      throw new AppError('ESRCH', `signal error: ${(e as Error).message}`);
    }
  }

  async wait(opts?: CallOptions): Promise<ProcStat> {
    if (this.#scrubbed) throw E.aborted();
    if (!this.#child) throw E.notStarted();
    const signal = opts?.signal;
    await new Promise<void>((resolve, reject) => {
      if (signal?.aborted) return reject(E.interrupted());
      const onAbort = () => reject(E.interrupted());
      signal?.addEventListener('abort', onAbort, { once: true });
      this.#exited.promise.then(resolve, reject).finally(() => signal?.removeEventListener('abort', onAbort));
    });
    return this.peek();
  }

  openInput(): InputWriter {
    if (!this.#child) throw E.notStarted();
    if (this.#stdinClosed) throw E.stdinClosed();
    this.#writers++;
    const stdin = this.#child.stdin!;
    let open = true;
    return {
      write: async (data: Buffer) => {
        if (!open) throw E.stdinClosed();
        if (stdin.destroyed || stdin.writableEnded) throw E.stdinClosed();
        if (!stdin.write(data)) await new Promise<void>((r) => { stdin.once('drain', r); stdin.once('close', r); });
      },
      close: async () => {
        if (!open) return;
        open = false;
        if (--this.#writers === 0) {
          this.#stdinClosed = true;
          stdin.end();
        }
      },
    };
  }

  openOutput(which: 'stdout' | 'stderr'): OutputReader {
    if (!this.#child) throw E.notStarted();
    const lease = this[which].acquire();
    const release = lease.release.bind(lease);
    const abandon = lease.abandon.bind(lease);
    lease.release = async () => {
      await release();
      this.#maybeDetach();
    };
    // A reader whose connection died: its last bytes go back, and Scrub may now apply.
    lease.abandon = () => {
      abandon();
      this.#maybeDetach();
    };
    return lease;
  }

  peek(): ProcStat {
    return {
      Cmd: this.#cmd,
      Phase: this.#phase,
      Pid: this.#child?.pid ?? null,
      ExitCode: this.#exitCode,
      Signal: this.#signal ? this.#signal.replace(/^SIG/, '') : null,
      Exit: this.#exit,
    };
  }

  /** The exit status as a shell reports it: the code, or 128+n for signal n. */
  exitStatus(): number | null {
    if (this.#signal) return 128 + signalNumber(this.#signal);
    return this.#exitCode;
  }

  scrub(): void {
    if (this.running) throw E.procRunning();
    this.#scrubbed = true;
    this.#exited.reject(E.aborted());
  }

  /** Daemon shutdown: TERM the process group, KILL after the grace period. */
  async terminate(graceMs: number): Promise<void> {
    const child = this.#child;
    if (!child || !this.running) return;
    const kill = (s: NodeJS.Signals) => {
      try {
        process.kill(-child.pid!, s);
      } catch {
        try { child.kill(s); } catch { /* gone */ }
      }
    };
    kill('SIGTERM');
    const t = setTimeout(() => kill('SIGKILL'), graceMs);
    await this.#exited.promise.catch(() => {});
    clearTimeout(t);
  }
}

function envObject(list: string[]): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const kv of list) {
    const i = kv.indexOf('=');
    if (i > 0) env[kv.slice(0, i)] = kv.slice(i + 1);
  }
  return env;
}

/** A Path with a slash is used as given (relative to Dir); one without is looked up in PATH. */
export function resolveExecutable(p: string, pathVar: string, dir: string): string {
  if (p.includes('/')) return p;
  for (const d of pathVar.split(':')) {
    if (!d) continue;
    const full = path.resolve(dir || process.cwd(), d, p);
    try {
      fs.accessSync(full, fs.constants.X_OK);
      if (fs.statSync(full).isFile()) return full;
    } catch {
      /* next */
    }
  }
  throw new AppError('ENOENT', `exec error: exec: ${JSON.stringify(p)}: executable file not found in $PATH`);
}

function describeSpawnError(e: NodeJS.ErrnoException): string {
  switch (e.code) {
    case 'ENOENT': return 'no such file or directory';
    case 'EACCES': return 'permission denied';
    default: return e.message;
  }
}

const SIGNAL_TEXT: Record<string, string> = {
  SIGTERM: 'terminated', SIGKILL: 'killed', SIGINT: 'interrupt', SIGHUP: 'hangup', SIGQUIT: 'quit',
  SIGABRT: 'aborted', SIGSEGV: 'segmentation fault', SIGPIPE: 'broken pipe', SIGUSR1: 'user defined signal 1',
  SIGUSR2: 'user defined signal 2', SIGALRM: 'alarm clock',
};
function signalText(sig: string): string {
  return SIGNAL_TEXT[sig] ?? sig;
}
