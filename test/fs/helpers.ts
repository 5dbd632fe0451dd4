import { execFile, spawn, type StdioOptions } from 'child_process';
import { existsSync, mkdtempSync, readFileSync, rmdirSync, rmSync } from 'fs';
import { tmpdir } from 'os';
import { join } from 'path';
import type { Client } from '../../src/api/types';
import { LocalClient } from '../../src/client/local';
import { Server } from '../../src/node/server';
import { mount, type Mount } from '../../src/fs/mount';

/** What a tap test gives the helpers: enough to register cleanup. */
interface T { teardown(fn: () => unknown): void }

/**
 * Mounts client at a fresh temp dir and unmounts it in teardown, also when the test failed (a
 * lazy fusermount as the last resort, so a crashed test never leaves a mount behind).
 */
export async function mountTemp(t: T, client: Client, log?: (line: string) => void): Promise<Mount> {
  const dir = mkdtempSync(join(tmpdir(), 'circuit-fs-'));
  const m = await mount(client, dir, { log });
  t.teardown(async () => {
    await m.unmount().catch(() => {});
    await new Promise((res) => execFile('fusermount', ['-uz', dir], () => res(null)));
    try { rmdirSync(dir); } catch { /* still busy: left for the OS */ }
  });
  return m;
}

export interface Run { code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string; ms: number }

/**
 * Runs a bash script asynchronously (never spawnSync: the mount is served by this event loop).
 * Fails the run after limitMs so a hung mount cannot hang the suite.
 */
export function sh(script: string, opts: { cwd?: string; env?: Record<string, string>; input?: string; limitMs?: number } = {}): Promise<Run> {
  return new Promise((resolve) => {
    const t0 = process.hrtime.bigint();
    const p = spawn('bash', ['-c', script], { cwd: opts.cwd, env: { ...process.env, ...opts.env }, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (d) => (stdout += d));
    p.stderr.on('data', (d) => (stderr += d));
    const limit = setTimeout(() => { stderr += '\n[sh: limit reached, killing]'; p.kill('SIGKILL'); }, opts.limitMs ?? 20_000);
    p.on('close', (code, signal) => {
      clearTimeout(limit);
      resolve({ code, signal, stdout, stderr, ms: Number(process.hrtime.bigint() - t0) / 1e6 });
    });
    p.stdin.on('error', () => {}); // a script that never reads its stdin
    p.stdin.end(opts.input ?? '');
  });
}

/** Retries fn until it returns truthy (or stops throwing), for at most timeoutMs. */
export async function eventually<T>(fn: () => T | Promise<T>, timeoutMs = 5000, stepMs = 20): Promise<T> {
  const end = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v;
      last = new Error('condition still false');
    } catch (err) {
      last = err;
    }
    if (Date.now() > end) throw last;
    await new Promise((r) => setTimeout(r, stepMs));
  }
}

/**
 * Waits until a process whose command line contains pattern sits in read(2) (syscall 0 on
 * x86-64, 63 on arm64): a reader blocked in the mount.
 */
export async function blockedInRead(pattern: string, timeoutMs = 5000): Promise<number> {
  return eventually(async () => {
    const r = await sh(`for p in $(pgrep -f -- ${JSON.stringify(pattern)}); do s=$(cut -d' ' -f1 /proc/$p/syscall 2>/dev/null); [ "$s" = 0 ] || [ "$s" = 63 ] && echo $p; done`);
    const pid = Number(r.stdout.trim().split('\n')[0]);
    return pid > 0 ? pid : 0;
  }, timeoutMs, 50);
}

/**
 * A real daemon (`circuit start --mount DIR`, test/helpers/daemon.ts) with its mount at a fresh
 * dir; teardown stops it, lazily unmounts and removes the dir, also when the test failed.
 * run() executes bash with M (the mount), X (the server id) and S ($M/$X) set.
 */
export async function daemonMount(t: T, extra: string[] = []) {
  // Required here so the unit tests that use this file never load the CLI helpers.
  // eslint-disable-next-line @typescript-eslint/no-var-requires
  const { startServer } = require('../helpers/daemon') as typeof import('../helpers/daemon');
  const base = mkdtempSync(join(tmpdir(), 'circuit-fs-e2e-'));
  const dir = join(base, 'mnt');
  const d = await startServer(['--mount', dir, ...extra]);
  t.teardown(async () => {
    await Promise.race([d.stop('SIGTERM'), new Promise((r) => setTimeout(r, 5000))]);
    if (d.proc.exitCode === null && d.proc.signalCode === null) await d.stop('SIGKILL');
    await new Promise((res) => execFile('fusermount', ['-uz', dir], () => res(null)));
    await new Promise((res) => execFile('rm', ['-rf', base], () => res(null)));
  });
  const S = join(dir, d.id);
  // Shells run in the scratch folder beside the mount point, never in the repository.
  const run = (script: string, opts: { limitMs?: number; input?: string } = {}) =>
    sh(`M=${dir}; X=${d.id}; S=${S}; ${script}`, { cwd: base, ...opts });
  return { d, dir, base, S, X: d.id, url: d.url, run };
}

/** A server in this process with its tree mounted at a temp dir: its client, and its directory there. */
export async function mountServer(t: T): Promise<{ client: LocalClient; dir: string }> {
  const server = new Server({ stderr: () => {} });
  const client = new LocalClient(server, { via: 'mount' });
  t.teardown(() => server.shutdown());
  const m = await mountTemp(t, client);
  return { client, dir: `${m.dir}/${server.id}` };
}

/**
 * Runs a child that writes its answer to the file named by its last argument, while this thread
 * (the mount's) is blocked for up to blockMs: whether the answer came before the block ended, and
 * the answer. The block is bounded, so a request that needs JavaScript fails the test instead of
 * hanging it (the kernel does not give up on a request already handed to the daemon): after the
 * block the loop runs again, answers it, and the child ends.
 */
export async function childWhileBlocked(cmd: string, args: string[], blockMs: number, stdio: StdioOptions = 'ignore'): Promise<{ inTime: boolean; out: string }> {
  const dir = mkdtempSync(join(tmpdir(), 'circuit-blocked-'));
  const result = join(dir, 'out');
  const child = spawn(cmd, [...args, result], { stdio });
  const exited = new Promise((res) => child.on('exit', res));
  const nap = new Int32Array(new SharedArrayBuffer(4));
  const until = Date.now() + blockMs;
  while (!existsSync(result) && Date.now() < until) Atomics.wait(nap, 0, 0, 2);
  const inTime = existsSync(result);
  await exited;
  const out = readFileSync(result, 'utf8');
  rmSync(dir, { recursive: true, force: true });
  return { inTime, out };
}
