import t from 'tap';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { startServer } from '../helpers/daemon';
import { parseExamples, matches } from './cli-docs.test';

/**
 * Runs the README's quick start as written, against a real daemon with a real mount (at a
 * temporary folder standing in for /circuit), in one bash session per block so `cd` and
 * variables carry from line to line.
 */
const ROOT = path.resolve(__dirname, '../../..');

t.test('README: the quick start sessions give the documented output', async (t) => {
  const mnt = fs.mkdtempSync(path.join(os.tmpdir(), 'circuit-readme-mnt-'));
  const srv = await startServer(['--mount', mnt]);
  t.teardown(async () => {
    await srv.stop();
    try { execFileSync('fusermount', ['-uz', mnt]); } catch { /* already gone */ }
  });
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'circuit-readme-'));
  fs.symlinkSync(path.join(ROOT, 'bin/circuit'), path.join(dir, 'circuit'));
  fs.writeFileSync(path.join(dir, 'url'), srv.url + '\n');
  const env = { ...process.env, PATH: `${dir}:${process.env.PATH}`, CIRCUIT: path.join(dir, 'url'), CIRCUIT_DISCOVER: '' };
  const blocks = parseExamples(fs.readFileSync(path.join(ROOT, 'README.md'), 'utf8'));
  t.equal(blocks.length, 2, 'a mount session and a CLI session');
  for (const steps of blocks) {
    // One bash for the block; a marker after each command separates the outputs.
    const script = steps.map((s) => `${s.cmd.replace(/\s+# .*$/, "").replace(/\/circuit\b/g, mnt)} 2>&1; echo "@@@"`).join('\n');
    const out = execFileSync('bash', ['-c', script], { env, timeout: 60_000 }).toString();
    const parts = out.split('@@@\n');
    steps.forEach((s, i) => {
      const got = (parts[i] ?? '').replace(/\n$/, '').split('\n').filter((l, _j, a) => !(a.length === 1 && l === ''));
      t.ok(matches(s.expect, got), `$ ${s.cmd}`, { expect: s.expect, got });
    });
  }
});
