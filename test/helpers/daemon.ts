/**
 * Real daemons and the real CLI for end-to-end tests: `startServer` runs `circuit start` as a
 * child process (no mount unless asked) and reads its URL; `cli` runs one CLI command against it.
 * `circuit start` opens no TCP port unless asked, so startServer asks for one on loopback
 * (`-a 127.0.0.1:0`) unless told otherwise, and puts the control socket in the daemon's var
 * folder (`--socket`), so test daemons never crowd the user's socket directory.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';

/** bin/circuit, as installed: the bundle (dist/circuit.js) through src/cli/launch.ts. */
export const MAIN = path.resolve(__dirname, '../../../bin/circuit');

/**
 * The environment for the daemons and CLIs we spawn: ours without the test runner's hooks (tap
 * injects NODE_OPTIONS and _TAPJS_* into every child, which would slow each CLI run and leak
 * into the processes a daemon starts) and without $CIRCUIT*, so nothing dials by accident.
 */
export function cleanEnv(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (k === 'NODE_OPTIONS' || k.startsWith('_TAPJS_') || k.startsWith('CIRCUIT')) continue;
    env[k] = v;
  }
  return { ...env, ...extra };
}

/**
 * Spawns `node MAIN ARGS` with exactly env. The runner's spawn hook adds its variables (and
 * NODE_OPTIONS) back to any env we pass, so the child goes through `env -i`, which clears them
 * before node starts: the daemon is then unhooked and its processes see only what they should.
 */
export function spawnCircuit(args: string[], env: NodeJS.ProcessEnv, stdio: Array<'pipe' | 'ignore' | number>, as?: User, under: string[] = []): ChildProcess {
  const pairs = Object.entries(env).filter(([, v]) => v !== undefined).map(([k, v]) => `${k}=${v}`);
  const argv = [...under, '/usr/bin/env', '-i', ...pairs, process.execPath, MAIN, ...args];
  const user = as ? ['setpriv', '--reuid', String(as.uid), '--regid', String(as.gid), '--clear-groups'] : [];
  return spawn(user[0] ?? argv[0], [...user.slice(1), ...(user.length ? argv : argv.slice(1))], { stdio: stdio as ['pipe', 'pipe', 'pipe'], cwd: as ? '/' : undefined });
}

/** Another local user, for commands run through setpriv (needs root). */
export interface User {
  uid: number;
  gid: number;
}
export const NOBODY: User = { uid: 65534, gid: 65534 };

/** Whether setpriv (util-linux) is there to run commands as another user. */
export const haveSetpriv = (() => {
  try {
    execFileSync('setpriv', ['--version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
})();

export interface Running {
  /** The URL of its TCP port, or with `tcp: false` the control socket's path. */
  url: string;
  /** The control socket's path. */
  socket: string;
  id: string;
  proc: ChildProcess;
  varDir: string;
  stderr: () => string;
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

/**
 * The URL a starting daemon prints as its first stdout line; fails (with its stderr) if it
 * exits first or says nothing within 20 s.
 */
export function urlOf(proc: ChildProcess, stderr: () => string): Promise<string> {
  return new Promise<string>((resolve, reject) => {
    let out = '';
    const t = setTimeout(() => reject(new Error(`no URL within 20 s; stderr: ${stderr()}`)), 20_000);
    proc.stdout!.on('data', (c) => {
      out += c;
      const i = out.indexOf('\n');
      if (i >= 0) {
        clearTimeout(t);
        resolve(out.slice(0, i));
      }
    });
    proc.once('exit', (code) => {
      clearTimeout(t);
      reject(new Error(`circuit start exited with ${code}: ${stderr()}`));
    });
  });
}

export interface StartOptions {
  env?: NodeJS.ProcessEnv;
  varDir?: string;
  /** false: add no `-a 127.0.0.1:0` (start's own default: no TCP port unless args ask). */
  tcp?: boolean;
  /** false: add no `--socket` (the socket goes to the user's default directory). */
  socket?: boolean;
}

const has = (args: string[], re: RegExp) => args.some((a) => re.test(a));

export async function startServer(args: string[] = ['--no-mount'], opts: StartOptions = {}): Promise<Running> {
  const varDir = opts.varDir ?? fs.mkdtempSync(path.join(os.tmpdir(), 'circuit-test-var-'));
  // Tests may read the var folder after the daemon stopped; it goes when the test process ends.
  if (!opts.varDir) process.once('exit', () => fs.rmSync(varDir, { recursive: true, force: true }));
  const extra: string[] = [];
  // a key (flag or environment) or an address already asks for a port, with its own defaults
  if (opts.tcp !== false && !has(args, /^--?(a|addr|hmac)(=|$)/) && !opts.env?.CIRCUIT_HMAC) extra.push('-a', '127.0.0.1:0');
  const socketArg = args.findIndex((a) => /^--?socket(=|$)/.test(a));
  let socket = socketArg >= 0 ? (args[socketArg].includes('=') ? args[socketArg].split('=')[1] : args[socketArg + 1]) : '';
  if (socketArg < 0 && opts.socket !== false) extra.push('--socket', (socket = path.join(varDir, 'control.sock')));
  const proc = spawnCircuit(['start', '--var', varDir, ...extra, ...args], cleanEnv(opts.env), ['ignore', 'pipe', 'pipe']);
  let err = '';
  proc.stderr!.on('data', (c) => (err += c));
  const url = await urlOf(proc, () => err);
  // The server's own id, from its attach line (`ls /` lists the whole cluster once it joined one).
  const id = (await eventually(() => /Attaching \/(X[0-9a-f]{16}) as server/.exec(err)?.[1], 5000)) as string;
  socket ||= (await eventually(() => /Listening on (\S+) \(/.exec(err)?.[1], 5000)) as string;
  return {
    url,
    socket,
    id,
    proc,
    varDir,
    stderr: () => err,
    stop: (signal = 'SIGTERM') =>
      new Promise((resolve) => {
        if (proc.exitCode !== null) return resolve(proc.exitCode);
        proc.once('exit', (code) => resolve(code));
        proc.kill(signal);
      }),
  };
}

export interface Result {
  code: number | null;
  stdout: string;
  stderr: string;
  out: Buffer;
}

/** Runs `circuit ARGS -d URL` (with url null: no -d) with input on stdin, as us or `as`; resolves when it exits. */
export function cli(url: string | null, args: string[], input?: string | Buffer, env: NodeJS.ProcessEnv = {}, as?: User): Promise<Result> {
  return new Promise((resolve, reject) => {
    const full = url ? [...args, '-d', url] : args;
    const p = spawnCircuit(full, cleanEnv(env), ['pipe', 'pipe', 'pipe'], as);
    const out: Buffer[] = [];
    let err = '';
    p.stdout!.on('data', (c) => out.push(c));
    p.stderr!.on('data', (c) => (err += c));
    p.on('error', reject);
    p.on('close', (code) => {
      const b = Buffer.concat(out);
      resolve({ code, stdout: b.toString(), stderr: err, out: b });
    });
    p.stdin!.on('error', () => {});
    p.stdin!.end(input ?? '');
  });
}

export type Background = ChildProcess & {
  /** stdout and stderr so far, interleaved. */
  output: () => string;
  /** stdout so far, as bytes. */
  stdoutBytes: () => Buffer;
  /** stderr so far. */
  errors: () => string;
  /** Resolves with the exit code (null when killed by a signal) once the process has exited. */
  exited: Promise<number | null>;
};

/**
 * Starts `circuit ARGS -d URL` and leaves it running (for blocking commands). Input, when given,
 * is written and stdin closed; otherwise stdin stays open for the caller. Its stdout is a
 * socket pair (node's own pipes) unless `pipe` asks for an OS pipe, as a shell's `|` gives, or
 * `out` gives a descriptor (e.g. a file's; then stdoutBytes stays empty: read the file).
 * `under` is a command that runs it (e.g. strace and its options).
 */
export function cliBackground(url: string, args: string[], input?: string | Buffer, opts: { pipe?: boolean; under?: string[]; out?: number } = {}): Background {
  const fifo = opts.pipe ? osPipe() : undefined;
  const p = spawnCircuit([...args, '-d', url], cleanEnv(), ['pipe', fifo?.writeFd ?? opts.out ?? 'pipe', 'pipe'], undefined, opts.under) as Background;
  if (fifo) fs.closeSync(fifo.writeFd);
  const stdout = fifo?.read ?? p.stdout;
  let out = '';
  let err = '';
  const bytes: Buffer[] = [];
  stdout?.on('data', (c: Buffer) => {
    out += c;
    bytes.push(c);
  });
  p.stderr!.on('data', (c) => {
    out += c;
    err += c;
  });
  p.output = () => out;
  p.stdoutBytes = () => Buffer.concat(bytes);
  p.errors = () => err;
  const closed = new Promise<number | null>((resolve) => {
    if (p.exitCode !== null) return resolve(p.exitCode);
    p.once('close', (code) => resolve(code));
  });
  // an OS pipe ends when its last writer closed it: the CLI, and a server writing into it
  const drained = fifo ? new Promise((resolve) => fifo.read.once('close', resolve)) : undefined;
  p.exited = drained ? Promise.all([closed, drained]).then(([code]) => code) : closed;
  p.stdin!.on('error', () => {});
  if (input !== undefined) p.stdin!.end(input);
  return p;
}

/** An OS pipe (a FIFO whose name is gone at once): its read end as a stream, its write end's fd. */
export function osPipe(): { read: net.Socket; writeFd: number } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'circuit-pipe-'));
  const fifo = path.join(dir, 'p');
  try {
    execFileSync('mkfifo', [fifo]);
    const readFd = fs.openSync(fifo, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK);
    const writeFd = fs.openSync(fifo, fs.constants.O_WRONLY);
    return { read: new net.Socket({ fd: readFd, readable: true, writable: false }), writeFd };
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * Whether strace (Debian package strace) is there and may trace (ptrace can be forbidden in a
 * container), to hold a CLI right after a system call.
 */
export const haveStrace = (() => {
  try {
    execFileSync('strace', ['-f', '-qq', '-o', '/dev/null', '--seccomp-bpf', '-e', 'trace=write', 'true'], { stdio: 'ignore', timeout: 10_000 });
    return true;
  } catch {
    return false;
  }
})();

/**
 * Whether native/fdtake is built (scripts/build-native.sh) and pidfd_getfd(2) works here (Linux
 * 5.6 or later, not forbidden by a seccomp filter): then a server writes `circuit stdout` and
 * `recv` into a CLI's socket pair or file itself (src/node/pipe-out.ts).
 */
export const haveFdtake = (() => {
  try {
    const m = { exports: {} as { takeFd?(pid: number, fd: number): number } };
    process.dlopen(m, path.resolve(__dirname, '../../../native/fdtake/build/Release/fdtake.node'));
    const fd = fs.openSync('/dev/null', 'r');
    try {
      fs.closeSync(m.exports.takeFd!(process.pid, fd));
    } finally {
      fs.closeSync(fd);
    }
    return true;
  } catch {
    return false;
  }
})();

/**
 * strace options (cliBackground's `under`) that hold the program for ms after each write(2)
 * returns, before it goes on: a SIGKILL sent meanwhile lands right after that write.
 */
export const holdAfterWrites = (ms: number) => ['strace', '-f', '-qq', '-o', '/dev/null', '--seccomp-bpf', '-e', 'trace=write', '-e', `inject=write:delay_exit=${ms * 1000}`];

/** The program strace (or env) at pid runs: its first child (env execs node). */
export function tracee(pid: number): number {
  return Number(fs.readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/)[0]);
}

/** Kills a background process (SIGKILL unless told) if it is still running, and waits for it. */
export async function kill(p: Background, signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
  if (p.exitCode === null && p.signalCode === null) p.kill(signal);
  await p.exited;
}

/** True while the process is alive and not a zombie. */
export function alive(pid: number): boolean {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return !/\) [ZX] /.test(stat);
  } catch {
    return false;
  }
}

/** Retries fn until it returns truthy, every `every` ms, for at most `ms`; throws on timeout. */
export async function eventually<T>(fn: () => Promise<T> | T, ms = 5000, every = 50): Promise<T> {
  const end = Date.now() + ms;
  let last: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v;
    } catch (e) {
      last = e;
    }
    if (Date.now() > end) throw new Error(`not true within ${ms} ms${last ? `: ${(last as Error).message}` : ''}`);
    await new Promise((r) => setTimeout(r, every));
  }
}
