import t from 'tap';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { spawn, type ChildProcess } from 'node:child_process';
import { startServer, cli, eventually } from '../helpers/daemon';
import { connect } from '../../src/client/remote';
import { keyedHandshake } from '../../src/cluster/tcp';
import { loadKey } from '../../src/cluster/keys';

/**
 * Issue 10 point 5: strangers cannot exhaust a server before the handshake. 3 000 silent TCP
 * connections to a keyed daemon: the owner's CLI still answers within a second, the daemon's
 * descriptor count stays bounded (it holds at most 256 unfinished handshakes), every silent
 * connection is closed within a few seconds, and the log gets at most about a line a second.
 */
const N = 3000;
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'circuit-sec-flood-'));
t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));

/** A child that opens n silent connections (its own fd limit raised) and reports as they close. */
function flooder(port: number, n: number): ChildProcess & { opened: () => number; closed: () => number } {
  const script = `
    const net = require('node:net');
    let opened = 0, closed = 0, started = 0;
    const report = () => process.stdout.write('opened ' + opened + ' closed ' + closed + '\\n');
    setInterval(report, 100);
    function one() {
      started++;
      const s = net.connect(${port}, '127.0.0.1');
      s.on('connect', () => opened++);
      s.on('error', () => {});
      s.on('close', () => closed++);
    }
    (function batch() {
      for (let i = 0; i < 100 && started < ${n}; i++) one();
      if (started < ${n}) setTimeout(batch, 10);
    })();`;
  const p = spawn('/bin/sh', ['-c', `ulimit -n 8192 && exec "${process.execPath}" -e "$0"`, script], { stdio: ['ignore', 'pipe', 'inherit'] });
  let last = { opened: 0, closed: 0 };
  let buf = '';
  p.stdout!.on('data', (c) => {
    buf += c;
    const lines = buf.split('\n');
    buf = lines.pop()!;
    const m = /opened (\d+) closed (\d+)/.exec(lines[lines.length - 1] ?? '');
    if (m) last = { opened: Number(m[1]), closed: Number(m[2]) };
  });
  return Object.assign(p, { opened: () => last.opened, closed: () => last.closed });
}

const fds = (pid: number) => fs.readdirSync(`/proc/${pid}/fd`).length;

t.test('3 000 silent connections: the owner is served, fds stay bounded, all are closed, the log stays short', async (t) => {
  const keyFile = path.join(dir, 'key');
  fs.writeFileSync(keyFile, (await cli(null, ['keygen'])).stdout, { mode: 0o600 });
  const env = { CIRCUIT_HMAC: keyFile };
  const d = await startServer(['--no-mount', '-a', '127.0.0.1:0'], { env });
  t.teardown(() => d.stop());
  const pid = d.proc.pid!;
  const port = Number(/:(\d+)\//.exec(d.url)![1]);
  const fd0 = fds(pid);
  const lines0 = d.stderr().split('\n').length - 1;

  const f = flooder(port, N);
  t.teardown(() => f.kill('SIGKILL'));
  let peak = fd0;
  const sampler = setInterval(() => (peak = Math.max(peak, fds(pid))), 20);
  t.teardown(() => clearInterval(sampler));
  const t0 = Date.now();
  await eventually(() => f.opened() >= N, 20_000, 50);
  t.pass(`${N} connections opened in ${Date.now() - t0} ms`);

  // the owner, while they are open: an in-process client and the real CLI
  const c0 = Date.now();
  const client = await connect(d.url, { handshake: keyedHandshake(loadKey(keyFile)) });
  t.equal((await client.home()).id, d.id);
  const connectMs = Date.now() - c0;
  await client.disconnect();
  t.ok(connectMs < 1000, `a client connects and is answered in ${connectMs} ms`);
  const times: number[] = [];
  for (let i = 0; i < 3; i++) {
    const s = Date.now();
    const r = await cli(d.url, ['ls', '/'], '', env);
    times.push(Date.now() - s);
    t.equal(r.stdout, `/${d.id}\n`, r.stderr);
  }
  t.ok(Math.min(...times) < 1000, `circuit ls / answers in ${times.join(', ')} ms (node start-up included)`);

  // all silent connections are closed by the daemon within a few seconds
  await eventually(() => f.closed() >= N, 10_000, 100);
  const closedMs = Date.now() - t0;
  t.ok(closedMs < 10_000, `all ${N} closed by the daemon ${closedMs} ms after the flood began`);
  clearInterval(sampler);
  t.ok(peak - fd0 <= 256 + 32, `the daemon's fd count went ${fd0} → at most ${peak} (bounded by the 256 unfinished handshakes)`);
  await eventually(() => fds(pid) <= fd0 + 4, 5000, 100);
  t.pass(`and back to ${fds(pid)}`);

  // the log: the first refusal in full, then at most a summary line a second
  await new Promise((r) => setTimeout(r, 1200));
  const lines = d.stderr().split('\n').slice(lines0).filter((l) => l.includes('rejecting connection'));
  const seconds = Math.ceil((Date.now() - t0) / 1000);
  t.ok(lines.length <= seconds + 1, `${lines.length} refusal lines in ${seconds} s`);
  const counted = lines.reduce((n, l) => n + Number(/rejecting connections: (\d+) more/.exec(l)?.[1] ?? 1), 0);
  t.ok(counted >= N, `they account for ${counted} refusals`);
  t.match(lines.join('\n'), /unauthenticated connections|did not finish/);
  t.equal(d.proc.exitCode, null, 'the daemon is alive');
});
