/**
 * Real daemons and the real CLI for end-to-end tests: `startServer` runs `circuit start` as a
 * child process (no mount unless asked) and reads its URL; `cli` runs one CLI command against it.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

export const MAIN = path.resolve(__dirname, '../../src/cli/main.js');

export interface Running {
  url: string;
  id: string;
  proc: ChildProcess;
  varDir: string;
  stderr: () => string;
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

export async function startServer(args: string[] = ['--no-mount']): Promise<Running> {
  const varDir = fs.mkdtempSync(path.join(os.tmpdir(), 'circuit-test-var-'));
  const proc = spawn(process.execPath, [MAIN, 'start', '--var', varDir, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let err = '';
  proc.stderr!.on('data', (c) => (err += c));
  const url = await new Promise<string>((resolve, reject) => {
    let out = '';
    const t = setTimeout(() => reject(new Error(`no URL within 20 s; stderr: ${err}`)), 20_000);
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
      reject(new Error(`circuit start exited with ${code}: ${err}`));
    });
  });
  const r = await cli(url, ['ls', '/']);
  const id = r.stdout.trim().split('\n')[0].slice(1);
  return {
    url,
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

/** Runs `circuit ARGS -d URL` with input on stdin; resolves when it exits. */
export function cli(url: string | null, args: string[], input?: string | Buffer, env: NodeJS.ProcessEnv = {}): Promise<Result> {
  return new Promise((resolve, reject) => {
    const full = url ? [...args, '-d', url] : args;
    const p = spawn(process.execPath, [MAIN, ...full], { stdio: ['pipe', 'pipe', 'pipe'], env: { ...process.env, CIRCUIT: '', CIRCUIT_DISCOVER: '', ...env } });
    const out: Buffer[] = [];
    let err = '';
    p.stdout.on('data', (c) => out.push(c));
    p.stderr.on('data', (c) => (err += c));
    p.on('error', reject);
    p.on('close', (code) => {
      const b = Buffer.concat(out);
      resolve({ code, stdout: b.toString(), stderr: err, out: b });
    });
    p.stdin.on('error', () => {});
    p.stdin.end(input ?? '');
  });
}

/** Starts `circuit ARGS` and leaves it running (for blocking commands). */
export function cliBackground(url: string, args: string[], input?: string): ChildProcess & { output: () => string } {
  const p = spawn(process.execPath, [MAIN, ...args, '-d', url], { stdio: ['pipe', 'pipe', 'pipe'] }) as ChildProcess & { output: () => string };
  let out = '';
  p.stdout!.on('data', (c) => (out += c));
  p.stderr!.on('data', (c) => (out += c));
  p.output = () => out;
  if (input !== undefined) p.stdin!.end(input);
  return p;
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
