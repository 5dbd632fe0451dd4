import t from 'tap';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { startServer } from '../helpers/daemon';
import { tmpDir } from '../helpers/tmp';

/**
 * Runs the examples of docs/cli.md as written: each `$ ` line in a ```sh block is run by bash,
 * with `circuit` on PATH, $CIRCUIT naming a file holding a live server's URL, $X its anchor and
 * $SOCK its control socket;
 * the lines after it are the expected output (stdout and stderr together), `…` matching anything.
 */
const ROOT = path.resolve(__dirname, '../../..');

export interface Step {
  cmd: string;
  expect: string[];
}

export function parseExamples(md: string): Step[][] {
  const blocks: Step[][] = [];
  const re = /```sh\n([\s\S]*?)```/g;
  for (let m; (m = re.exec(md)); ) {
    const steps: Step[] = [];
    for (const line of m[1].split('\n')) {
      if (line.startsWith('$ ')) steps.push({ cmd: line.slice(2), expect: [] });
      else if (steps.length && line !== '') steps[steps.length - 1].expect.push(line);
    }
    if (steps.length) blocks.push(steps);
  }
  return blocks;
}

export function matches(expect: string[], got: string[]): boolean {
  if (expect.length !== got.length) return false;
  return expect.every((e, i) => {
    const re = new RegExp('^' + e.split('…').map((s) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')).join('.*') + '$');
    return re.test(got[i]);
  });
}

t.test('docs/cli.md: every example gives the documented output', async (t) => {
  const srv = await startServer();
  t.teardown(() => srv.stop());
  const dir = tmpDir('circuit-docs-');
  fs.symlinkSync(path.join(ROOT, 'bin/circuit'), path.join(dir, 'circuit'));
  const urlFile = path.join(dir, 'url');
  fs.writeFileSync(urlFile, srv.url + '\n');
  const env = { ...process.env, PATH: `${dir}:${process.env.PATH}`, CIRCUIT: urlFile, X: '/' + srv.id, SOCK: srv.socket, CIRCUIT_DISCOVER: '' };
  const blocks = parseExamples(fs.readFileSync(path.join(ROOT, 'docs/cli.md'), 'utf8'));
  t.ok(blocks.length >= 3, 'the page has examples');
  for (const steps of blocks) {
    for (const s of steps) {
      let out: string;
      try {
        out = execFileSync('bash', ['-c', `${s.cmd} 2>&1`], { env, timeout: 20_000 }).toString();
      } catch (e) {
        out = ((e as { stdout?: Buffer }).stdout ?? '').toString();
      }
      const got = out.replace(/\n$/, '').split('\n').filter((l, i, a) => !(a.length === 1 && l === ''));
      t.ok(matches(s.expect, got), `$ ${s.cmd}`, { expect: s.expect, got });
    }
  }
});
