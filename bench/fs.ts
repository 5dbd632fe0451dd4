/**
 * #1, #2, #4: through the FUSE mount. A real `circuit start --mount DIR` in a child process and,
 * as the baseline, bench/minimal-fs.ts (fuse-native serving constants, direct_io) in another;
 * the file operations run in a third process (a node loop, or `cat`), never in the process that
 * serves the mount. Each mount point is a fresh temporary directory, lazily unmounted at the end.
 *
 * #1  open+read+close of …/chan/peek: a node loop of fs.openSync, readSync (64 KiB buffer, until
 *     EOF: two reads), closeSync; median and p99, vs the same loop on the minimal FS's `const`.
 * #2  `cat …/proc/stdout > /dev/null` of a `head -c N /dev/zero` process vs `cat` of N zero bytes
 *     from the minimal FS. N is 1 GB (quick 50 MB), or less if a 50 MB probe says 1 GB would take
 *     longer than 40 s (the row says so).
 * #3  with the mesh built (src/node/mesh.ts): a second daemon joined to the first runs the
 *     `head -c`, read through the first one's mount; vs the same read of a process on the mount's
 *     own server, same size, same run (issue 13's target), and vs raw TCP from one node process to
 *     another on loopback (N bytes written, read to the end). Without the mesh, a row that says so.
 * #4  sequential send+recv pairs through the mount from one node process: writeFileSync(send),
 *     readFileSync(recv), on a channel of capacity 1.
 * Targets are issue 13's (they tightened issue 7's #1 and #4 and changed #3's baseline).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { connect, type RemoteClient } from '../src/client/remote';
import {
  firstLine, median, notMeasured, quantile, round, run, spawnDaemon, stopChild, tempMountDir, unmountLazy, versus,
  type ChildDaemon, type Measure,
} from './util';

const MOUNT_JS = path.resolve(__dirname, '../src/fs/mount.js');
const MINIMAL_JS = path.resolve(__dirname, 'minimal-fs.js');
const MESH_JS = [path.resolve(__dirname, '../src/cluster/mesh.js'), path.resolve(__dirname, '../src/node/mesh.js')];

export const FS_MEASURES = {
  peek: '#1 mount open+read+close chan/peek (median)',
  peekP99: '#1 mount open+read+close chan/peek (p99)',
  stdout: '#2 mount cat proc/stdout throughput',
  remote: '#3 mount cat proc/stdout from another server',
  remoteTcp: '#3 mount cat proc/stdout from another server vs raw TCP',
  pairs: '#4 mount sequential send+recv pairs',
};

/** Issue 13's targets. */
const TARGET = {
  peek: { text: '≤ 1.2×', ok: (x: number) => x <= 1.2 },
  stdout: { text: '≥ 0.7×', ok: (x: number) => x >= 0.7 },
  remote: { text: '≥ 0.8× of same-server', ok: (x: number) => x >= 0.8 },
  pairs: { text: '≥ 1 500 pairs/s', ok: (x: number) => x >= 1500 },
};

const OPEN_READ_CLOSE = `
const fs = require('fs');
const [file, n, warm] = [process.argv[1], Number(process.argv[2]), Number(process.argv[3])];
const buf = Buffer.alloc(65536);
const out = [];
for (let i = 0; i < warm + n; i++) {
  const t0 = process.hrtime.bigint();
  const fd = fs.openSync(file, 'r');
  while (fs.readSync(fd, buf, 0, buf.length, null) > 0);
  fs.closeSync(fd);
  if (i >= warm) out.push(Number(process.hrtime.bigint() - t0) / 1000);
}
console.log(JSON.stringify(out));`;

const PAIRS = `
const fs = require('fs');
const [dir, n, warm] = [process.argv[1], Number(process.argv[2]), Number(process.argv[3])];
const msg = Buffer.from('0123456789abcdef');
for (let i = 0; i < warm; i++) { fs.writeFileSync(dir + '/send', msg); fs.readFileSync(dir + '/recv'); }
const t0 = process.hrtime.bigint();
for (let i = 0; i < n; i++) {
  fs.writeFileSync(dir + '/send', msg);
  const got = fs.readFileSync(dir + '/recv');
  if (got.length !== msg.length) throw new Error('got ' + got.length + ' bytes');
}
console.log(JSON.stringify({ secs: Number(process.hrtime.bigint() - t0) / 1e9 }));`;

export async function benchFs(opts: { quick: boolean }): Promise<Measure[]> {
  const hasMesh = MESH_JS.some((f) => fs.existsSync(f));
  const mesh = notMeasured(FS_MEASURES.remote, 'not measured: needs the mesh (issue 4)', TARGET.remote.text);
  const unavailable = (why: string) => [
    notMeasured(FS_MEASURES.peek, `not measured: mount not available (${why})`, TARGET.peek.text),
    notMeasured(FS_MEASURES.peekP99, `not measured: mount not available (${why})`),
    notMeasured(FS_MEASURES.stdout, `not measured: mount not available (${why})`, TARGET.stdout.text),
    mesh,
    notMeasured(FS_MEASURES.pairs, `not measured: mount not available (${why})`, TARGET.pairs.text),
  ];
  if (!fs.existsSync(MOUNT_JS)) return unavailable('no dist/src/fs/mount.js');
  if (!fs.existsSync('/dev/fuse')) return unavailable('no /dev/fuse');

  const cdir = tempMountDir('circuit-bench-mnt-');
  const mdir = tempMountDir('circuit-bench-minimal-');
  let daemon: ChildDaemon | undefined;
  let minimal: ChildProcess | undefined;
  let client: RemoteClient | undefined;
  try {
    try {
      daemon = await spawnDaemon(['--mount', cdir]);
      client = await connect(daemon.url);
      await client.make(`/${daemon.id}/b/ch`, 'chan', { cap: 1_000_000 });
      const peek = fs.readFileSync(path.join(cdir, daemon.id, 'b/ch/chan/peek'), 'utf8');
      if (!peek.includes('"Cap"')) throw new Error(`chan/peek reads ${JSON.stringify(peek.slice(0, 80))}`);
    } catch (e) {
      return unavailable((e as Error).message.split('\n')[0]!.slice(0, 160));
    }
    minimal = spawn(process.execPath, [MINIMAL_JS, mdir, '0'], { stdio: ['ignore', 'pipe', 'pipe'] });
    await firstLine(minimal);
    const rows: Measure[] = [];
    const c = client;
    const id = daemon.id;
    rows.push(...(await attempt([FS_MEASURES.peek, FS_MEASURES.peekP99], () => peekRows(opts, path.join(cdir, id, 'b/ch/chan/peek'), path.join(mdir, 'const')))));
    rows.push(...(await attempt([FS_MEASURES.stdout], () => stdoutRow(opts, c, id, cdir, mdir))));
    rows.push(...(hasMesh ? await attempt([FS_MEASURES.remote, FS_MEASURES.remoteTcp], () => remoteRow(opts, daemon!, c, cdir)) : [mesh]));
    rows.push(...(await attempt([FS_MEASURES.pairs], () => pairsRow(opts, c, id, cdir))));
    return rows;
  } finally {
    await client?.disconnect().catch(() => {});
    if (daemon) await daemon.stop();
    if (minimal) await stopChild(minimal);
    unmountLazy(cdir);
    unmountLazy(mdir);
  }
}

/** Runs fn; on failure, one "failed" row per measure name, so the run goes on. */
async function attempt(names: string[], fn: () => Promise<Measure[]>): Promise<Measure[]> {
  try {
    return await fn();
  } catch (e) {
    return names.map((n) => notMeasured(n, `failed: ${(e as Error).message.split('\n')[0]!.slice(0, 200)}`));
  }
}

async function openReadClose(file: string, n: number): Promise<number[]> {
  const r = await run(process.execPath, ['-e', OPEN_READ_CLOSE, file, String(n), String(Math.min(200, n))], { timeoutMs: 120_000 });
  return JSON.parse(r.stdout) as number[];
}

async function peekRows(opts: { quick: boolean }, circuitFile: string, minimalFile: string): Promise<Measure[]> {
  const n = opts.quick ? 300 : 5_000;
  const c = await openReadClose(circuitFile, n);
  const m = await openReadClose(minimalFile, n);
  const how = `${n} iterations in one node process: openSync, readSync until EOF, closeSync; baseline minimal fuse-native FS (direct_io) serving a constant of the same length`;
  return [
    { measure: FS_MEASURES.peek, value: round(median(c), 1), unit: 'µs', ...versus(median(c), round(median(m), 1), TARGET.peek.text, TARGET.peek.ok), note: how },
    { measure: FS_MEASURES.peekP99, value: round(quantile(c, 0.99), 1), unit: 'µs', ...versus(quantile(c, 0.99), round(quantile(m, 0.99), 1), '—', () => true), met: undefined },
  ];
}

/** Seconds for `cat FILE > /dev/null`. */
async function catSecs(file: string, timeoutMs: number): Promise<number> {
  const r = await run('/bin/sh', ['-c', 'exec cat "$1" > /dev/null', 'sh', file], { timeoutMs });
  return r.ms / 1000;
}

let procs = 0;

/**
 * Seconds for `cat` of a `head -c BYTES /dev/zero` process's stdout through the mount at cdir;
 * the process runs on server id (reached with client c) and is scrubbed afterwards.
 */
async function catOfProc(c: RemoteClient, id: string, cdir: string, bytes: number, timeoutMs = 120_000): Promise<number> {
  const name = `out${procs++}`;
  const p = `/${id}/b/${name}`;
  await c.make(p, 'proc', { Env: null, Dir: '', Path: 'head', Args: ['-c', String(bytes), '/dev/zero'], Scrub: false });
  try {
    return await catSecs(path.join(cdir, id, 'b', name, 'proc/stdout'), timeoutMs);
  } finally {
    await c.signal(p, 'KILL').catch(() => {});
    await c.wait(p).catch(() => {});
    await c.scrub(p).catch(() => {});
  }
}

/** 1 GB, or what a 50 MB probe says would take about 40 s (quick: the probe); and why, when less. */
function transferSize(opts: { quick: boolean }, probe: number, probeSecs: number): { bytes: number; why: string } {
  const MB = 1e6;
  if (opts.quick) return { bytes: probe, why: '' };
  const est = (1e9 / probe) * probeSecs;
  const bytes = est <= 40 ? 1e9 : Math.max(probe, Math.floor(((40 / probeSecs) * probe) / MB) * MB);
  return { bytes, why: bytes < 1e9 ? `; 1 GB would take about ${round(est, 0)} s, so ${bytes / MB} MB were read` : '' };
}

async function stdoutRow(opts: { quick: boolean }, c: RemoteClient, id: string, cdir: string, mdir: string): Promise<Measure[]> {
  const MB = 1e6;
  const probe = 50 * MB;
  const probeSecs = await catOfProc(c, id, cdir, probe);
  const { bytes, why } = transferSize(opts, probe, probeSecs);
  const secs = bytes === probe ? probeSecs : await catOfProc(c, id, cdir, bytes);
  await catSecs(path.join(mdir, `zero.${probe}`), 60_000); // warm-up
  const baseSecs = await catSecs(path.join(mdir, `zero.${bytes}`), 120_000);
  const rate = bytes / secs / MB;
  const base = bytes / baseSecs / MB;
  return [{
    measure: FS_MEASURES.stdout,
    value: round(rate, 1),
    unit: 'MB/s',
    ...versus(rate, round(base, 1), TARGET.stdout.text, TARGET.stdout.ok),
    note: `cat of ${bytes / MB} MB from head -c … /dev/zero vs cat of as many bytes from the minimal FS (direct_io)${why}`,
  }];
}

async function pairsRow(opts: { quick: boolean }, c: RemoteClient, id: string, cdir: string): Promise<Measure[]> {
  const n = opts.quick ? 200 : 3_000;
  // A daemon runs for days: the row is its steady rate. Its ops reach optimized code only after
  // a few thousand pairs (three rounds of 3 000 after 20 to warm up ran at 930-1 145, 1 250-1 486
  // and 1 319-1 908 pairs/s on one daemon), so 5 000 go first.
  const warm = opts.quick ? 200 : 5_000;
  const p = `/${id}/b/pair`;
  await c.make(p, 'chan', { cap: 1 });
  try {
    const r = await run(process.execPath, ['-e', PAIRS, path.join(cdir, id, 'b/pair/chan'), String(n), String(warm)], { timeoutMs: 120_000 });
    const { secs } = JSON.parse(r.stdout) as { secs: number };
    const rate = n / secs;
    return [{
      measure: FS_MEASURES.pairs,
      value: Math.round(rate),
      unit: 'pairs/s',
      target: TARGET.pairs.text,
      met: TARGET.pairs.ok(rate),
      note: `${n} pairs of 16 B from one node process after ${warm} to warm up the daemon's JIT (its steady rate; on a fresh daemon the first 3 000 run at about 0.7x the rate of later ones): writeFileSync(send), readFileSync(recv), channel cap 1`,
    }];
  } finally {
    await c.scrub(p).catch(() => {});
  }
}

/** N bytes over loopback TCP from one node process to another: written all, read to the end, timed from connect. */
const TCP_SERVER = `
const n = Number(process.argv[1]);
const s = require('net').createServer((c) => {
  const b = Buffer.alloc(1 << 20);
  let left = n;
  const go = () => { while (left > 0) { const k = Math.min(left, b.length); left -= k; if (!c.write(k === b.length ? b : b.subarray(0, k))) return c.once('drain', go); } c.end(); };
  go();
}).listen(0, '127.0.0.1', () => console.log(s.address().port));`;
const TCP_CLIENT = `
let t0 = process.hrtime.bigint(); let got = 0;
const c = require('net').connect(Number(process.argv[1]), '127.0.0.1', () => (t0 = process.hrtime.bigint()));
c.on('data', (d) => (got += d.length));
c.on('end', () => console.log(JSON.stringify({ got, secs: Number(process.hrtime.bigint() - t0) / 1e9 })));`;

async function rawTcpSecs(bytes: number): Promise<number> {
  const server = spawn(process.execPath, ['-e', TCP_SERVER, String(bytes)], { stdio: ['ignore', 'pipe', 'pipe'] });
  try {
    const port = await firstLine(server);
    const r = await run(process.execPath, ['-e', TCP_CLIENT, port], { timeoutMs: 120_000 });
    const { got, secs } = JSON.parse(r.stdout) as { got: number; secs: number };
    if (got !== bytes) throw new Error(`raw tcp: got ${got} of ${bytes} bytes`);
    return secs;
  } finally {
    await stopChild(server);
  }
}

async function remoteRow(opts: { quick: boolean }, a: ChildDaemon, ca: RemoteClient, cdir: string): Promise<Measure[]> {
  const MB = 1e6;
  const b = await spawnDaemon(['--no-mount', '--join', a.url]);
  const c = await connect(b.url);
  try {
    // The mount lists a server once the mesh has told its daemon about it.
    const deadline = Date.now() + 15_000;
    while (!fs.existsSync(path.join(cdir, b.id))) {
      if (Date.now() > deadline) throw new Error(`the joined server ${b.id} did not appear in the mount within 15 s`);
      await new Promise((r) => setTimeout(r, 100));
    }
    const probe = opts.quick ? 20 * MB : 50 * MB;
    const probeSecs = await catOfProc(c, b.id, cdir, probe);
    const { bytes, why } = transferSize(opts, probe, probeSecs);
    const secs = bytes === probe ? probeSecs : await catOfProc(c, b.id, cdir, bytes);
    const localSecs = await catOfProc(ca, a.id, cdir, bytes);
    await rawTcpSecs(probe); // warm-up
    const tcp = bytes / (await rawTcpSecs(bytes)) / MB;
    const rate = bytes / secs / MB;
    const local = bytes / localSecs / MB;
    const how = `cat through this mount of ${bytes / MB} MB from head -c on a second daemon joined with --join`;
    return [
      {
        measure: FS_MEASURES.remote,
        value: round(rate, 1),
        unit: 'MB/s',
        ...versus(rate, round(local, 1), TARGET.remote.text, TARGET.remote.ok),
        note: `${how}; baseline the same cat of a process on the mount's own server, same size, same run${why}`,
      },
      {
        measure: FS_MEASURES.remoteTcp,
        value: round(rate, 1),
        unit: 'MB/s',
        baseline: round(tcp, 1),
        ratio: round(rate / tcp, 3),
        note: `${how}; baseline node → node over loopback TCP (issue 7's baseline)`,
      },
    ];
  } finally {
    await c.disconnect().catch(() => {});
    await b.stop();
  }
}
