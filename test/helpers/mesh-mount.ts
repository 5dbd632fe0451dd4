/**
 * The mesh through the mount, as two tests set it up: server B without a mount, server A with a
 * mount at BASE/mnt joined to B, so the shell on the mount reaches B's elements routed by A.
 */
import { execFile, execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { startServer, type Running } from './daemon';

/** Runs a bash script with env added; stdout kept byte for byte (latin1), no exit code thrown. */
export const bash = (script: string, env: Record<string, string>) =>
  new Promise<{ code: number; out: string; err: string }>((resolve) => {
    execFile('bash', ['-c', script], { env: { ...process.env, ...env }, maxBuffer: 1 << 26, encoding: 'buffer' }, (e, out, err) =>
      resolve({ code: e ? Number((e as { code?: number }).code ?? 1) : 0, out: out.toString('latin1'), err: err.toString() }),
    );
  });

/** B, then A mounted at BASE/mnt and joined to B; the teardown stops both and removes BASE. */
export async function mountedPair(t: { teardown(fn: () => unknown): void }, prefix: string): Promise<{ base: string; M: string; a: Running; b: Running }> {
  const base = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  const M = path.join(base, 'mnt');
  const b = await startServer(['--no-mount']);
  const a = await startServer(['--mount', M, '-j', b.url]);
  t.teardown(async () => {
    await a.stop();
    await b.stop();
    try { execFileSync('fusermount', ['-uz', M]); } catch { /* already gone */ }
    fs.rmSync(base, { recursive: true, force: true });
  });
  return { base, M, a, b };
}
