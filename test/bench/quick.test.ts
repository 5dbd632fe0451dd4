import t from 'tap';
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

/**
 * Keeps `npm run bench` working: runs `node dist/bench/run.js --quick` (timings are not judged
 * here) and checks that it exits 0 and prints one table with a row for every measure of issue 7.
 * A mount that is not available is allowed ("not measured"); a benchmark that failed is not.
 */
const RUN = path.resolve(__dirname, '../../bench/run.js');

/** Row prefixes the table must hold; the rows of bench/run.ts's own benchmarks must not have failed. */
const OWN = [
  '#1 mount open+read+close chan/peek (median)',
  '#1 mount open+read+close chan/peek (p99)',
  '#2 mount cat proc/stdout throughput',
  '#3 mount cat proc/stdout from another server',
  '#4 mount sequential send+recv pairs',
  '#5 chan pipelined msgs/s, 16 B',
  '#5 chan pipelined msgs/s, 64 KiB',
  '#6 proc start+wait /bin/true',
  '#7 cli wall time: circuit peek /Xid',
  '#7 cli wall time: circuit ls /',
  '#7 cli module load only',
  '#7 cli connect + call + exit',
  '#9 idle daemon RSS',
  '#9 idle daemon CPU',
  '#10 RSS growth per channel',
  '#10 RSS growth per running process',
];
const OTHERS = ['#8 membership n=10:', '#8 membership bytes/member/s, n=1000 vs n=100', 'dns udp queries/s', 'crypto.'];

t.test('bench: --quick prints the table with every measure', async (t) => {
  const out = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'circuit-bench-test-')), 'quick.md');
  t.teardown(() => fs.rmSync(path.dirname(out), { recursive: true, force: true }));
  const started = Date.now();
  const r = await new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve, reject) => {
    const p = spawn(process.execPath, [RUN, '--quick', '--out', out], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (c) => (stdout += c));
    p.stderr.on('data', (c) => (stderr += c));
    const timer = setTimeout(() => p.kill('SIGKILL'), 240_000);
    p.on('error', reject);
    p.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
  t.equal(r.code, 0, `exit 0; stderr: ${r.stderr.slice(-2000)}`);
  const lines = r.stdout.split('\n').filter((l) => l.startsWith('| '));
  t.match(lines[0] ?? '', /^\| measure \| value \| baseline \(same run\) \| ratio \| target \| met\? \|/, 'one markdown table');
  const rows = lines.slice(1);
  for (const name of [...OWN, ...OTHERS]) {
    const row = rows.find((l) => l.startsWith(`| ${name}`));
    t.ok(row, `a row for ${name}`);
    if (row && OWN.includes(name)) t.notMatch(row, /\| failed: /, `${name} did not fail`);
  }
  t.notMatch(r.stdout, /\| (chan|proc|cli|idle|rss|fs): error \|/, 'no benchmark of run.ts threw');
  t.equal(fs.readFileSync(out, 'utf8').includes(lines[0]!), true, 'the table is written to --out');
  t.comment(`quick run took ${((Date.now() - started) / 1000).toFixed(1)} s`);
});
