import { spawn, type ChildProcess } from 'node:child_process';
import { redactEnv } from '../oplog';
import fs = require('node:fs');
import net = require('node:net');
import path = require('node:path');
import type { Readable } from 'node:stream';
import type { ElementContext, ElementState, KindModule } from '../element';
import { ProcessStdio } from '../stdio';
import type { CallOptions, InputWriter, OutputReader, ProcCmd } from '../../api/types';
import { AppError, E } from '../../kit/errors';
import { parseSignal } from '../signals';
import { parseProcCmd } from '../../api/cmd';
import { groupAlive, guardGroup, releaseGroup } from '../orphans';
import { outputPipe, pumpOutput, type PumpSource } from '../pump';
import { closeQuietly } from '../../kit/fds';

/**
 * A process element (docs/fs.md, docs/cli.md): output flows as it
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

export class Proc implements ElementState {
  #cmd: ProcCmd | null = null;
  #child: ChildProcess | undefined;
  #exitCode: number | null = null;
  #signal: string | null = null;
  #exit: { Body: string } | null = null;
  readonly stdio: ProcessStdio;

  constructor(readonly ctx: ElementContext) {
    this.stdio = new ProcessStdio(ctx, () => this.scrub());
  }

  get running(): boolean {
    return this.stdio.phase === 'running';
  }
  get pid(): number | undefined {
    return this.#child?.pid;
  }

  async start(input: unknown): Promise<void> {
    const cmd = parseProcCmd(input); // it may come off the wire: check it again
    this.stdio.starting();
    try {
      await this.#spawn(cmd);
    } catch (e) {
      this.stdio.failed();
      throw e;
    }
  }

  async #spawn(cmd: ProcCmd): Promise<void> {
    const env = cmd.Env ? envObject(cmd.Env) : process.env;
    const file = resolveExecutable(cmd.Path, env.PATH ?? '', cmd.Dir);
    // stdout and stderr are pipes the output pump reads (src/node/pump.ts), or Node's own.
    const out = outputPipe();
    const err = out && outputPipe();
    const pipes = out && err ? [out, err] : undefined;
    if (out && !err) closeQuietly(...out);
    let child: ChildProcess;
    try {
      child = spawn(file, cmd.Args ?? [], {
        argv0: cmd.Path,
        env,
        cwd: cmd.Dir || undefined,
        detached: true,
        stdio: ['pipe', pipes ? pipes[0][1] : 'pipe', pipes ? pipes[1][1] : 'pipe'],
      });
    } catch (e) {
      if (pipes) closeQuietly(pipes[0][0], pipes[1][0]); // nothing will read them
      // Node throws (rather than emitting 'error') for a few errnos of the exec itself, E2BIG the likeliest.
      const failed = e as NodeJS.ErrnoException;
      if (failed.syscall !== 'spawn' || !failed.code) throw e;
      throw new AppError(failed.code === 'E2BIG' ? 'EINVAL' : 'EIO', `exec error: fork/exec ${cmd.Path}: ${describeSpawnError(failed)}`, { cause: e });
    } finally {
      // The child has its ends now (or never will): ours would keep its outputs from ending.
      if (pipes) closeQuietly(pipes[0][1], pipes[1][1]);
    }
    await new Promise<void>((resolve, reject) => {
      child.once('spawn', resolve);
      child.once('error', (e: NodeJS.ErrnoException) => {
        if (pipes) closeQuietly(pipes[0][0], pipes[1][0]);
        const why = e.code === 'ENOENT' && cmd.Dir && !fs.existsSync(cmd.Dir) ? `chdir ${cmd.Dir}: no such file or directory` : describeSpawnError(e);
        reject(new AppError(e.code === 'EACCES' ? 'EACCES' : 'ENOENT', `exec error: fork/exec ${cmd.Path}: ${why}`, { cause: e }));
      });
    });
    guardGroup(child.pid!); // dies with the daemon, even a kill -9'd one (orphans.ts)
    this.#cmd = cmd;
    this.#child = child;
    (['stdout', 'stderr'] as const).forEach((which, i) => {
      if (pipes) this.#pump(which, pipes[i][0]);
      else this.#stream(which, child[which]!);
    });
    child.stdin!.on('error', () => {}); // EPIPE after the process exits is not our failure
    this.stdio.running(child.stdin!, cmd.Scrub);
    child.on('exit', (code, sig) => {
      releaseGroup(child.pid!);
      this.#exitCode = code;
      this.#signal = sig;
      this.#exit = sig ? { Body: `signal: ${signalText(sig)}` } : code === 0 ? null : { Body: `exit status ${code}` };
      this.stdio.exited();
    });
  }

  /** Output read by the native pump; by Node's stream if the pump cannot take this pipe. */
  #pump(which: 'stdout' | 'stderr', fd: number): void {
    let src: PumpSource;
    try {
      src = pumpOutput(fd, {
        data: (c) => this.stdio.push(which, c, src.pause, src.resume),
        end: () => this.stdio.end(which),
      });
      this.stdio[which].lender = src;
    } catch {
      this.#stream(which, new net.Socket({ fd, readable: true, writable: false }));
    }
  }

  #stream(which: 'stdout' | 'stderr', src: Readable): void {
    src.on('data', (c: Buffer) => this.stdio.push(which, c, () => src.pause(), () => src.resume()));
    src.on('end', () => this.stdio.end(which));
    src.on('error', () => this.stdio.end(which));
  }

  openInput(): InputWriter {
    return this.stdio.openInput();
  }

  openOutput(which: 'stdout' | 'stderr'): OutputReader | Promise<OutputReader> {
    return this.stdio.openOutput(which);
  }

  async signal(sig: string): Promise<void> {
    const { name } = parseSignal(sig);
    this.stdio.checkSignal();
    try {
      process.kill(this.#child!.pid!, name);
    } catch (e) {
      throw new AppError('ESRCH', `signal error: ${(e as Error).message}`);
    }
  }

  async wait(opts?: CallOptions): Promise<ProcStat> {
    await this.stdio.wait(opts);
    return this.peek();
  }

  /** The environment the process got, one NAME=VALUE a string. */
  env(): string[] {
    if (!this.#cmd) throw E.notStarted();
    if (this.#cmd.Env) return [...this.#cmd.Env];
    return Object.entries(process.env).map(([k, v]) => `${k}=${v ?? ''}`);
  }

  peek(): ProcStat {
    return {
      Cmd: this.#cmd,
      Phase: !this.#child ? 'idle' : this.#signal ? 'signaled' : this.#exitCode !== null ? 'exited' : 'running',
      Pid: this.#child?.pid ?? null,
      ExitCode: this.#exitCode,
      Signal: this.#signal ? this.#signal.replace(/^SIG/, '') : null,
      Exit: this.#exit,
    };
  }

  scrub(): void {
    if (this.running) throw E.procRunning();
    this.stdio.scrubbed();
  }

  /** Daemon shutdown: TERM the process group, KILL after the grace period, then scrub. */
  async shutdown(graceMs: number): Promise<void> {
    const child = this.#child;
    if (child && this.running) {
      const kill = (s: NodeJS.Signals) => {
        try {
          process.kill(-child.pid!, s);
        } catch {
          try { child.kill(s); } catch { /* gone */ }
        }
      };
      const until = Date.now() + graceMs;
      kill('SIGTERM');
      const t = setTimeout(() => kill('SIGKILL'), graceMs);
      await this.stdio.wait().catch(() => {});
      clearTimeout(t);
      // The process may have forked after the TERM went out (a shell's `sleep 100 &` it was
      // running): that child missed it and outlives the process, holding its stdout open. The
      // group's stragglers get TERM too, and KILL when the grace period is over.
      if (groupAlive(child.pid!)) {
        kill('SIGTERM');
        while (groupAlive(child.pid!) && Date.now() < until) await new Promise((r) => setTimeout(r, 20));
        if (groupAlive(child.pid!)) kill('SIGKILL');
      }
    }
    this.scrub();
  }
}

/** The proc kind: one OS process (docs/fs.md, `proc`). */
export const proc: KindModule<Proc, ProcCmd | null> = {
  kind: 'proc',
  defaultSpec: null,
  parse: (spec) => (spec === null || spec === undefined ? null : parseProcCmd(spec)),
  describe: (cmd) => (cmd ? JSON.stringify(redactEnv(lowerKeys(cmd))) : 'an idle process'),
  async make(cmd, ctx) {
    const p = new Proc(ctx);
    if (cmd) await p.start(cmd);
    return p;
  },
  verbs: {
    start: (p, [cmd]) => p.start(cmd),
    signal: (p, [sig]) => p.signal(sig),
    wait: (p, [], opts) => p.wait(opts),
    env: (p) => p.env(),
    openInput: (p) => p.openInput(),
    openOutput: (p, [which]) => p.openOutput(which),
  },
};

function lowerKeys(o: object): Record<string, unknown> {
  return Object.fromEntries(Object.entries(o).map(([k, v]) => [k.toLowerCase(), v]));
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
    case 'E2BIG': return 'argument list too long';
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
