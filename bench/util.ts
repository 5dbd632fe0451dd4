/**
 * What the benchmarks of issue 7 share: the row they return (the common bench signature plus an
 * optional baseline, target and verdict for the table), timing and percentile helpers, a real
 * daemon in a child process, and /proc readers for RSS and CPU time.
 */
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { connect } from '../src/client/remote';
import { startDaemon, type Daemon } from '../src/node/daemon';

/** One row of the table. The first four fields are the common bench signature; the rest are optional. */
export interface Measure {
  measure: string;
  value: number;
  unit: string;
  note?: string;
  /** The same-run baseline, in `unit` unless baselineUnit says otherwise. */
  baseline?: number;
  baselineUnit?: string;
  /** value / baseline, when both are there. */
  ratio?: number;
  /** The target in words, e.g. "≤ 1.3×". */
  target?: string;
  /** Whether the target is met; undefined when there is no target or nothing was measured. */
  met?: boolean;
  /** Set when nothing was measured: the reason, printed in place of a value. */
  notMeasured?: string;
}

export type Bench = (opts: { quick: boolean }) => Promise<Measure[]>;

/** The CLI as installed: bin/circuit, which runs the bundle dist/circuit.js (src/cli/launch.ts); benchmarks run from dist/bench. */
export const CLI_MAIN = path.resolve(__dirname, '../../bin/circuit');
/** The CLI as tsc compiled it, one module a file (what bin/circuit runs when the build made no bundle). */
export const CLI_TSC = path.resolve(__dirname, '../src/cli/main.js');
/** The loader bin/circuit uses. */
export const CLI_LAUNCH = path.resolve(__dirname, '../src/cli/launch.js');

export function notMeasured(measure: string, why: string, target?: string): Measure {
  return { measure, value: NaN, unit: '', notMeasured: why, target };
}

/** Nanosecond clock in milliseconds, as a float. */
export function nowMs(): number {
  return Number(process.hrtime.bigint()) / 1e6;
}

/** The q-quantile (0..1) of samples, nearest-rank. */
export function quantile(samples: number[], q: number): number {
  const s = [...samples].sort((a, b) => a - b);
  if (!s.length) return NaN;
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil(q * s.length) - 1))]!;
}

export function median(samples: number[]): number {
  return quantile(samples, 0.5);
}

/** Rounds to d decimals (2 by default) for the table. */
export function round(x: number, d = 2): number {
  const f = 10 ** d;
  return Math.round(x * f) / f;
}

/** A ratio row's fields: value/baseline, and whether it meets `ok`. */
export function versus(value: number, baseline: number, target: string, ok: (ratio: number) => boolean): Pick<Measure, 'baseline' | 'ratio' | 'target' | 'met'> {
  const ratio = value / baseline;
  return { baseline, ratio: round(ratio, 3), target, met: ok(ratio) };
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Runs a child to completion; rejects on a non-zero exit or after timeoutMs (then killed). */
export function run(
  file: string,
  args: string[],
  opts: { timeoutMs?: number; stdin?: string; shell?: boolean; env?: NodeJS.ProcessEnv } = {},
): Promise<{ stdout: string; stderr: string; ms: number }> {
  return new Promise((resolve, reject) => {
    const t0 = nowMs();
    const p = spawn(file, args, { stdio: ['pipe', 'pipe', 'pipe'], env: opts.env && { ...process.env, ...opts.env } });
    let out = '';
    let err = '';
    p.stdout.on('data', (c) => (out += c));
    p.stderr.on('data', (c) => (err += c));
    const timer = setTimeout(() => {
      p.kill('SIGKILL');
      reject(new Error(`${path.basename(file)} ${args.join(' ').slice(0, 80)}: no exit within ${opts.timeoutMs} ms`));
    }, opts.timeoutMs ?? 60_000);
    p.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    p.on('close', (code, sig) => {
      clearTimeout(timer);
      const ms = nowMs() - t0;
      if (code === 0) resolve({ stdout: out, stderr: err, ms });
      else reject(new Error(`${path.basename(file)} exited with ${code ?? sig}: ${err.trim().slice(0, 300)}`));
    });
    p.stdin.on('error', () => {});
    p.stdin.end(opts.stdin ?? '');
  });
}

/** Waits for a child's first stdout line (its "ready" or URL); rejects if it exits first. */
export function firstLine(p: ChildProcess, timeoutMs = 20_000): Promise<string> {
  return new Promise((resolve, reject) => {
    let out = '';
    let err = '';
    p.stderr?.on('data', (c) => (err += c));
    const t = setTimeout(() => reject(new Error(`no output within ${timeoutMs} ms; stderr: ${err.slice(0, 300)}`)), timeoutMs);
    const onData = (c: Buffer) => {
      out += c;
      const i = out.indexOf('\n');
      if (i >= 0) {
        clearTimeout(t);
        p.stdout?.off('data', onData);
        p.off('exit', onExit);
        resolve(out.slice(0, i));
      }
    };
    const onExit = (code: number | null) => {
      clearTimeout(t);
      reject(new Error(`exited with ${code} before it was ready: ${err.trim().slice(0, 300)}`));
    };
    p.stdout?.on('data', onData);
    p.once('exit', onExit);
  });
}

/** Sends sig and waits for the exit; SIGKILL after graceMs. */
export async function stopChild(p: ChildProcess, sig: NodeJS.Signals = 'SIGTERM', graceMs = 5000): Promise<void> {
  if (p.exitCode !== null || p.signalCode !== null) return;
  const exited = new Promise<void>((r) => p.once('exit', () => r()));
  p.kill(sig);
  const t = setTimeout(() => p.kill('SIGKILL'), graceMs);
  await exited;
  clearTimeout(t);
}

/** A real daemon: `circuit start` in a child process, with its own var folder. */
export interface ChildDaemon {
  url: string;
  id: string;
  pid: number;
  proc: ChildProcess;
  stop(): Promise<void>;
}

/** Starts `node bin/circuit start --var TMP ARGS` and reads its URL (and id) from stdout. */
export async function spawnDaemon(args: string[] = ['--no-mount'], nodeArgs: string[] = []): Promise<ChildDaemon> {
  const varDir = fs.mkdtempSync(path.join(os.tmpdir(), 'circuit-bench-var-'));
  // a TCP port on loopback unless args choose one (start opens none unless asked), and the
  // control socket in the var folder rather than the user's shared socket directory
  const net = args.some((a) => /^--?(a|addr|if|hmac)(=|$)/.test(a)) ? [] : ['-a', '127.0.0.1:0'];
  const proc = spawn(process.execPath, [...nodeArgs, CLI_MAIN, 'start', '--var', varDir, '--socket', path.join(varDir, 'control.sock'), ...net, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  proc.stderr!.resume();
  const stop = async () => {
    await stopChild(proc);
    fs.rmSync(varDir, { recursive: true, force: true });
  };
  try {
    const url = await firstLine(proc);
    proc.stdout!.resume();
    const c = await connect(url);
    const id = (await c.home()).id;
    await c.disconnect();
    return { url, id, pid: proc.pid!, proc, stop };
  } catch (e) {
    await stop();
    throw e;
  }
}

/** Resident set size of a process, bytes (VmRSS in /proc/PID/status). */
export function rssOf(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
  if (!m) throw new Error(`no VmRSS for ${pid}`);
  return Number(m[1]) * 1024;
}

let clkTck: number | undefined;
/** User + system CPU time of a process, seconds (fields 14 and 15 of /proc/PID/stat). */
export function cpuSecondsOf(pid: number): number {
  clkTck ??= Number(execFileSync('getconf', ['CLK_TCK']).toString().trim()) || 100;
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // rest[0] is field 3 (state): utime is field 14, stime field 15.
  return (Number(rest[11]) + Number(rest[12])) / clkTck;
}

/** A unique temporary directory for a mount point. */
export function tempMountDir(prefix: string): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
}

/** `fusermount -uz DIR` (ignoring "not mounted") and removes the directory. */
export function unmountLazy(dir: string): void {
  try {
    execFileSync('fusermount', ['-uz', dir], { stdio: 'ignore' });
  } catch {
    /* not mounted */
  }
  try {
    fs.rmdirSync(dir);
  } catch {
    /* busy or gone */
  }
}

/**
 * An in-process daemon for a bench, its var folder a fresh temporary one that close() removes:
 * the default var folder ($TMPDIR/circuit-Q…-P…) keeps ops.log after a stop, and the test run
 * fails when anything is left in its $TMPDIR (scripts/tmpcheck.sh).
 */
export async function benchDaemon(): Promise<Daemon> {
  const varDir = fs.mkdtempSync(path.join(os.tmpdir(), 'circuit-bench-var-'));
  const d = await startDaemon({ stderr: () => {}, varDir }).catch((e: unknown) => {
    fs.rmSync(varDir, { recursive: true, force: true });
    throw e;
  });
  const close = d.close.bind(d);
  return {
    ...d,
    close: async () => {
      try {
        await close();
      } finally {
        fs.rmSync(varDir, { recursive: true, force: true });
      }
    },
  };
}
