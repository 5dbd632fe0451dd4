/**
 * A real Docker engine and a tiny image for the docker element's tests, with no registry: the
 * engine is Debian's docker.io (started here when it is not running) and the image is imported
 * from a root file system holding nothing but Debian's static busybox and its applet links.
 */
import { execFile, spawn } from 'node:child_process';
import { promisify } from 'node:util';
import { copyFileSync, mkdirSync, mkdtempSync, openSync, rmSync, symlinkSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const run = promisify(execFile);

/** Where a dockerd started by the tests writes its log. */
export const DOCKERD_LOG = '/tmp/circuit-test-dockerd.log';

/** The busybox applets the test image links in /bin. */
const APPLETS = [
  'sh', 'cat', 'echo', 'sleep', 'head', 'true', 'false', 'ls', 'env', 'pwd', 'printf', 'wc',
  'kill', 'trap', 'test', 'yes', 'dd', 'id', 'tr', 'sed', 'grep', 'seq', 'date',
];

async function engineUp(): Promise<boolean> {
  try {
    await run('docker', ['info', '--format', '{{.ServerVersion}}'], { timeout: 10_000 });
    return true;
  } catch {
    return false;
  }
}

let engine: Promise<void> | undefined;

/** Makes sure a Docker engine answers, starting `dockerd` in the background when none does. */
export function ensureDocker(): Promise<void> {
  engine ??= (async () => {
    if (await engineUp()) return;
    const log = openSync(DOCKERD_LOG, 'a');
    const d = spawn('dockerd', [], { detached: true, stdio: ['ignore', log, log] });
    d.on('error', () => {});
    d.unref();
    for (let i = 0; i < 60; i++) {
      if (await engineUp()) return;
      await new Promise((r) => setTimeout(r, 500));
    }
    throw new Error(`dockerd did not come up within 30 s; see ${DOCKERD_LOG}`);
  })();
  engine.catch(() => (engine = undefined));
  return engine;
}

async function imageExists(name: string): Promise<boolean> {
  try {
    await run('docker', ['image', 'inspect', name], { timeout: 10_000 });
    return true;
  } catch {
    return false;
  }
}

/** Builds (once) an image named `name` from /bin/busybox; returns the name. */
export async function ensureImage(name = 'circuit-busybox'): Promise<string> {
  await ensureDocker();
  if (await imageExists(name)) return name;
  if (!existsSync('/bin/busybox')) throw new Error('ensureImage: /bin/busybox missing (apt-get install busybox-static)');
  const root = mkdtempSync(join(tmpdir(), 'circuit-rootfs-'));
  try {
    for (const d of ['bin', 'tmp', 'etc', 'data']) mkdirSync(join(root, d));
    copyFileSync('/bin/busybox', join(root, 'bin', 'busybox'));
    for (const a of APPLETS) symlinkSync('busybox', join(root, 'bin', a));
    await new Promise<void>((resolve, reject) => {
      const tar = spawn('tar', ['-C', root, '-c', '.'], { stdio: ['ignore', 'pipe', 'inherit'] });
      const imp = spawn('docker', ['import', '-c', 'ENV PATH=/bin', '-', name], { stdio: ['pipe', 'ignore', 'pipe'] });
      let err = '';
      imp.stderr.on('data', (b: Buffer) => (err += b));
      tar.stdout.pipe(imp.stdin);
      imp.on('error', reject);
      imp.on('close', (code) => (code === 0 ? resolve() : reject(new Error(`docker import failed: ${err}`))));
    });
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
  return name;
}

/** Names of all containers, running or not, whose name starts with prefix. */
export async function containersNamed(prefix: string): Promise<string[]> {
  const { stdout } = await run('docker', ['ps', '-a', '--format', '{{.Names}}'], { timeout: 10_000 });
  return stdout.split('\n').filter((n) => n && n.startsWith(prefix));
}

/** True when `docker ps -a` lists a container with this id or name. */
export async function containerListed(idOrName: string): Promise<boolean> {
  const { stdout } = await run('docker', ['ps', '-a', '--no-trunc', '--format', '{{.ID}} {{.Names}}'], { timeout: 10_000 });
  return stdout.split('\n').some((l) => l.split(' ').includes(idOrName) || (idOrName.length >= 12 && l.startsWith(idOrName)));
}
