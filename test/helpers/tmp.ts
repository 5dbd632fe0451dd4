import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

/**
 * A fresh folder in $TMPDIR that goes when the test process exits (`npm test` fails if a run
 * leaves anything in its $TMPDIR: scripts/tmpcheck.sh). Mounts inside must be gone by then.
 */
export function tmpDir(prefix: string): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  process.once('exit', () => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}
