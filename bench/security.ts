/**
 * Issue 6's closing note: the cost of encryption, measured in one run against two real daemons
 * (child processes, `circuit start --no-mount -a 127.0.0.1:0`), one with a key and one without.
 *
 *  - stdout streaming: a process `head -c N /dev/zero`, then `circuit stdout PATH > /dev/null`
 *    through the real CLI; MB/s = N / the CLI's wall time (its start-up, ~0.1 s, included).
 *  - channel messages: a client in this process (the client API over TCP loopback), 16-byte
 *    messages through a channel, one send and one recv at a time (latency-bound) and with 64 of
 *    each in flight (throughput-bound); msgs/s.
 * Each figure is the best of a few rounds, alternating keyed and keyless, so both see the same
 * machine state. The same runs are also given per CPU second (user + system) of the daemon and
 * the client (this process, or the CLI process under bash's `time`): on a machine shared with
 * other work the wall-clock ratios swing widely, the CPU ones much less.
 */
import { pipeline } from './chan';
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { connect, type RemoteClient } from '../src/client/remote';
import { keyedHandshake } from '../src/cluster/tcp';
import { generateKey, loadKey } from '../src/cluster/keys';
import { CLI_MAIN, firstLine, nowMs, round, stopChild } from './util';

export interface SecurityMeasure { measure: string; value: number; unit: string; note?: string }

interface Daemon {
  url: string;
  id: string;
  env: NodeJS.ProcessEnv;
  client: RemoteClient;
  proc: ChildProcess;
  stop(): Promise<void>;
}

function childEnv(extra: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (k !== 'NODE_OPTIONS' && !k.startsWith('CIRCUIT') && !k.startsWith('_TAPJS_')) env[k] = v;
  return { ...env, ...extra };
}

async function daemon(keyFile: string | null): Promise<Daemon> {
  const varDir = fs.mkdtempSync(path.join(os.tmpdir(), 'circuit-bench-sec-'));
  const env = childEnv(keyFile ? { CIRCUIT_HMAC: keyFile } : {});
  const proc = spawn(process.execPath, [CLI_MAIN, 'start', '--no-mount', '-a', '127.0.0.1:0', '--var', varDir], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  const stop = async () => {
    await stopChild(proc);
    fs.rmSync(varDir, { recursive: true, force: true });
  };
  try {
    const url = await firstLine(proc);
    proc.stdout!.resume();
    proc.stderr!.resume();
    const client = await connect(url, { handshake: keyedHandshake(keyFile ? loadKey(keyFile) : null) });
    const id = (await client.home()).id;
    return { url, id, env, client, proc, stop: async () => { await client.disconnect().catch(() => {}); await stop(); } };
  } catch (e) {
    await stop();
    throw e;
  }
}

/** CPU seconds (user + system) a process has used so far, from /proc. */
function cpuOf(pid: number): number {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(f[11]) + Number(f[12])) / 100; // utime, stime in clock ticks (USER_HZ 100)
}

/**
 * Runs the CLI with stdin and the daemon's environment; stdout to /dev/null; resolves with its
 * wall ms and CPU seconds (bash's `time` of the CLI process).
 */
function cliRun(d: Daemon, args: string[], stdin = ''): Promise<{ ms: number; cpu: number }> {
  return new Promise((resolve, reject) => {
    const devnull = fs.openSync('/dev/null', 'w');
    const t0 = nowMs();
    const script = 'TIMEFORMAT="cpu %3U %3S"; time "$0" "$@"';
    const p = spawn('/bin/bash', ['-c', script, process.execPath, CLI_MAIN, ...args, '-d', d.url], { env: d.env, stdio: ['pipe', devnull, 'pipe'] });
    fs.closeSync(devnull);
    let err = '';
    p.stderr!.on('data', (c) => (err += c));
    const timer = setTimeout(() => p.kill('SIGKILL'), 120_000);
    p.on('close', (code) => {
      clearTimeout(timer);
      const ms = nowMs() - t0;
      const m = /cpu ([\d.]+) ([\d.]+)\s*$/.exec(err);
      if (code === 0) resolve({ ms, cpu: m ? Number(m[1]) + Number(m[2]) : NaN });
      else reject(new Error(`circuit ${args[0]} exited with ${code}: ${err.trim().slice(0, 200)}`));
    });
    p.stdin!.end(stdin);
  });
}

/** A rate two ways: per wall second, and per CPU second of both ends (load-independent). */
interface Rate { wall: number; cpu: number }

let seq = 0;

/** MB/s of `circuit stdout` for a process that writes `bytes` zero bytes; MB per CPU second of daemon + CLI. */
async function stdoutRate(d: Daemon, bytes: number): Promise<Rate> {
  const p = `/${d.id}/bench-sec/stdout-${seq++}`;
  await cliRun(d, ['mkproc', '--scrub', p], JSON.stringify({ Path: '/usr/bin/head', Args: ['-c', String(bytes), '/dev/zero'] }));
  const c0 = cpuOf(d.proc.pid!);
  const { ms, cpu } = await cliRun(d, ['stdout', p]);
  const daemonCpu = cpuOf(d.proc.pid!) - c0;
  return { wall: bytes / 1e6 / (ms / 1000), cpu: bytes / 1e6 / (cpu + daemonCpu) };
}

/** Messages per second of n 16-byte messages through a channel with `window` sends and recvs in flight. */
async function chanRate(d: Daemon, n: number, window: number): Promise<Rate> {
  const p = `/${d.id}/bench-sec/chan-${seq++}`;
  await d.client.make(p, 'chan', { cap: 1 << 20 });
  const c0 = cpuOf(d.proc.pid!);
  const u0 = process.cpuUsage();
  const rate = await pipeline(n, (m) => d.client.send(p, m), () => d.client.recv(p), Buffer.alloc(16, 7), window);
  const u = process.cpuUsage(u0);
  const cpu = cpuOf(d.proc.pid!) - c0 + (u.user + u.system) / 1e6;
  await d.client.scrub(p);
  return { wall: rate, cpu: n / cpu };
}

export async function benchSecurity(opts: { quick: boolean }): Promise<SecurityMeasure[]> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'circuit-bench-sec-key-'));
  const keyFile = path.join(dir, 'key');
  fs.writeFileSync(keyFile, generateKey() + '\n', { mode: 0o600 });
  const bytes = (opts.quick ? 20 : 200) * 2 ** 20;
  const rounds = opts.quick ? 1 : 5;
  const nSeq = opts.quick ? 500 : 5_000;
  const nPipe = opts.quick ? 2_000 : 30_000;
  const ds: Daemon[] = [];
  try {
    ds.push(await daemon(null), await daemon(keyFile));
    const [plain, keyed] = ds as [Daemon, Daemon];
    const best = { stdout: [0, 0], seq: [0, 0], pipe: [0, 0] };
    const bestCpu = { stdout: [0, 0], seq: [0, 0], pipe: [0, 0] };
    const keep = (k: keyof typeof best, i: number, r: Rate) => {
      best[k][i] = Math.max(best[k][i]!, r.wall);
      bestCpu[k][i] = Math.max(bestCpu[k][i]!, r.cpu);
    };
    // warm-up: JIT, socket buffers, the CLI's module cache
    for (const d of ds) {
      await stdoutRate(d, 2 * 2 ** 20);
      await chanRate(d, 200, 1);
      await chanRate(d, 500, 64);
    }
    for (let r = 0; r < rounds; r++) {
      // alternate which mode goes first, so a busy spell of the machine falls on both
      const order = r % 2 === 0 ? ([[0, plain], [1, keyed]] as const) : ([[1, keyed], [0, plain]] as const);
      for (const [i, d] of order) {
        keep('stdout', i, await stdoutRate(d, bytes));
        keep('seq', i, await chanRate(d, nSeq, 1));
        keep('pipe', i, await chanRate(d, nPipe, 64));
      }
    }
    const rows: SecurityMeasure[] = [];
    const pair = (name: string, unit: string, v: number[], note: string, digits = 0) => {
      const [without, withKey] = v as [number, number];
      const ratio = round(withKey / without, 3);
      rows.push({ measure: `security ${name}, no key`, value: round(without, digits), unit, note });
      rows.push({ measure: `security ${name}, with a key`, value: round(withKey, digits), unit, note: `${ratio}× the keyless figure (same run); ${note}` });
    };
    const mib = bytes / 2 ** 20;
    pair('stdout streaming (circuit stdout > /dev/null)', 'MB/s', best.stdout, `head -c ${mib}M /dev/zero, CLI wall time incl. start-up, best of ${rounds}`, 1);
    pair('chan msgs/s, 16 B, one at a time', 'msgs/s', best.seq, `${nSeq} send+recv pairs, client API over loopback, best of ${rounds}`);
    pair('chan msgs/s, 16 B, 64 in flight', 'msgs/s', best.pipe, `${nPipe} msgs, 64 sends + 64 recvs in flight, best of ${rounds}`);
    // the same runs per CPU second of both ends: what encryption costs, whatever else runs
    const cpuNote = 'per CPU second (user + system) of the daemon and the client, same runs';
    pair('stdout streaming per CPU second', 'MB/cpu-s', bestCpu.stdout, `${cpuNote} (the CLI process)`, 1);
    pair('chan msgs, 16 B, one at a time, per CPU second', 'msgs/cpu-s', bestCpu.seq, cpuNote);
    pair('chan msgs, 16 B, 64 in flight, per CPU second', 'msgs/cpu-s', bestCpu.pipe, cpuNote);
    return rows;
  } finally {
    for (const d of ds) await d.stop().catch(() => {});
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

if (require.main === module) {
  benchSecurity({ quick: process.argv.includes('--quick') }).then(
    (r) => {
      console.table(r);
      process.exit(0);
    },
    (e) => {
      console.error(e);
      process.exit(1);
    },
  );
}
