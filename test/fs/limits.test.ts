import t from 'tap';
import * as fs from 'node:fs';
import { spawn } from 'node:child_process';
import { daemonMount } from './helpers';
import { cleanEnv, MAIN } from '../helpers/daemon';

/**
 * Bounded input, refused early (issue 12): a writer that tries to put 300 MB into a control file
 * gets EMSGSIZE at the write that crosses the file's bound, long before it wrote everything, and
 * the daemon's memory grows by no more than that bound (a coarse check of VmRSS). The same for
 * `circuit send` fed 300 MB on standard input. Before, a 300 MB line was read for 20 s and one
 * 300 MB send grew the daemon by 610 MB before it was refused.
 */
const env = daemonMount(t);
const TRY = 300 << 20;
const MiB = 1 << 20;

const rss = (pid: number) => Number(/^VmRSS:\s*(\d+) kB/m.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'))![1]) * 1024;

/** Writes up to TRY bytes of `byte` in 128 KiB writes; the bytes accepted and the error that stopped it. */
function flood(file: string, byte: string): { wrote: number; code: string | null } {
  const fd = fs.openSync(file, 'w');
  const chunk = Buffer.alloc(128 << 10, byte);
  let wrote = 0;
  let code: string | null = null;
  const t0 = Date.now();
  try {
    // bounded in time too: before the bounds, a line file took 300 MB at about 15 MB/s
    while (wrote < TRY && Date.now() - t0 < 20_000) wrote += fs.writeSync(fd, chunk);
  } catch (e) {
    code = (e as NodeJS.ErrnoException).code ?? 'unknown';
  }
  try {
    fs.closeSync(fd);
  } catch {
    /* the close may report the same failure */
  }
  return { wrote, code };
}

t.test('limits: control files refuse an oversized input at once; the daemon holds no more than the bound', async (t) => {
  const { run, S, d } = await env;
  await run(`mkdir -p $S/lim/ch/chan $S/lim/p/proc $S/lim/ns/dns $S/lim/q/proc && echo '{"Path":"sleep","Args":["100"]}' > $S/lim/p/proc/cmd`);
  t.teardown(() => run(`echo KILL > $S/lim/p/proc/signal`));
  const pid = d.proc.pid!;
  const cases: Array<[string, number]> = [
    ['lim/ch/chan/cap', 4096],
    ['lim/p/proc/signal', 4096],
    ['lim/ns/dns/records', 4096],
    ['lim/q/proc/cmd', MiB],
    ['lim/ch/chan/send', 16 * MiB],
  ];
  for (const [file, bound] of cases) {
    const before = rss(pid);
    const t0 = Date.now();
    const r = flood(`${S}/${file}`, file.endsWith('cmd') ? ' ' : 'a');
    const grew = rss(pid) - before;
    t.equal(r.code, 'EMSGSIZE', `${file}: the write that crossed the bound failed with EMSGSIZE`);
    t.ok(r.wrote <= bound + (128 << 10), `${file}: refused after ${r.wrote} bytes (bound ${bound}), of ${TRY} tried, in ${Date.now() - t0} ms`);
    t.ok(grew < bound * 3 + 32 * MiB, `${file}: daemon RSS grew by ${(grew / MiB).toFixed(1)} MiB`);
    t.match((await run(`cat $S/${file.replace(/[^/]+$/, 'error')}`)).stdout, /^EMSGSIZE: .*maximum of \d+ bytes/, `${file}: the error file says why`);
  }
  t.equal((await run('cat $S/lim/ch/chan/peek')).stdout.replace(/\s/g, '').match(/"NumSend":0/)?.[0], '"NumSend":0', 'nothing was sent');
  t.equal(d.proc.exitCode, null, 'the daemon is alive');
});

t.test('limits: circuit send refuses a 300 MB message as it reads it', async (t) => {
  const { run, X, url, d } = await env;
  await run(`mkdir -p $S/lim2/ch/chan`);
  const pid = d.proc.pid!;
  const before = rss(pid);
  const p = spawn(process.execPath, [MAIN, 'send', `/${X}/lim2/ch`, '-d', url], { env: cleanEnv(), stdio: ['pipe', 'pipe', 'pipe'] });
  let err = '';
  p.stderr.on('data', (c) => (err += c));
  let fed = 0;
  let stopped = false;
  p.stdin.on('error', () => (stopped = true));
  const chunk = Buffer.alloc(1 << 20, 'm');
  const exited = new Promise<number | null>((res) => p.on('close', (code) => res(code)));
  while (!stopped && fed < TRY && p.exitCode === null) {
    if (!p.stdin.write(chunk)) await new Promise((res) => { p.stdin.once('drain', res); p.once('close', res); });
    fed += chunk.length;
  }
  p.stdin.destroy();
  const code = await exited;
  t.equal(code, 1);
  t.equal(err, `circuit: send error: message exceeds the maximum of ${16 * MiB} bytes\n`);
  t.ok(fed < 64 * MiB, `the CLI stopped reading after ${(fed / MiB).toFixed(0)} MiB of ${TRY / MiB}`);
  const grew = rss(pid) - before;
  t.ok(grew < 32 * MiB, `daemon RSS grew by ${(grew / MiB).toFixed(1)} MiB`);
  t.match((await run('cat $S/lim2/ch/chan/peek')).stdout.replace(/\s/g, ''), /"NumSend":0/, 'nothing was sent');
});
