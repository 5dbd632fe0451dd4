import t from 'tap';
import * as fs from 'node:fs';
import * as crypto from 'node:crypto';
import * as path from 'node:path';
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { havePump, outputPipe, pumpOutput, type PumpSource } from '../../src/node/pump';
import { closeQuietly } from '../../src/kit/fds';

// The output pump (native/fdtake/pump.c through src/node/pump.ts) against real children.
const skip = !havePump() && 'the add-on native/fdtake was not built (sh scripts/build-native.sh)';

interface Run {
  child: ChildProcess;
  out: Buffer[];
  size(): number;
  ended: Promise<number>;
  exited: Promise<NodeJS.Signals | number | null>;
  src: PumpSource;
  data: Promise<void>; // the first piece
}

/** Spawns file args with stdout on a pump pipe (stdin a Node pipe, stderr inherited). */
function run(file: string, args: string[]): Run {
  const [r, w] = outputPipe()!;
  const child = spawn(file, args, { stdio: ['pipe', w, 'inherit'] });
  closeQuietly(w);
  const out: Buffer[] = [];
  let size = 0;
  let first!: () => void;
  const data = new Promise<void>((res) => (first = res));
  let ended!: (e: number) => void;
  const endP = new Promise<number>((res) => (ended = res));
  const src = pumpOutput(r, {
    data: (c) => { out.push(c); size += c.length; first(); },
    end: (e) => ended(e),
  });
  const exited = new Promise<NodeJS.Signals | number | null>((res) => child.on('exit', (code, sig) => res(sig ?? code)));
  return { child, out, size: () => size, ended: endP, exited, src, data };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function flags(fd: number): number {
  const m = /flags:\s*([0-7]+)/.exec(fs.readFileSync(`/proc/self/fdinfo/${fd}`, 'utf8'));
  return parseInt(m![1], 8);
}

t.test('outputPipe: a pipe, both ends close-on-exec, only the read end non-blocking', { skip }, async (t) => {
  const [r, w] = outputPipe()!;
  t.teardown(() => closeQuietly(r, w));
  t.match(fs.readlinkSync(`/proc/self/fd/${r}`), /^pipe:/);
  const O_NONBLOCK = 0o4000, O_CLOEXEC = 0o2000000;
  t.ok(flags(r) & O_NONBLOCK, 'read end non-blocking');
  t.notOk(flags(w) & O_NONBLOCK, 'write end blocking, as a shell pipe is');
  t.ok(flags(r) & O_CLOEXEC && flags(w) & O_CLOEXEC, 'close-on-exec');
});

t.test('pump: one thread for the whole process, named circuit-pump, taking no signals', { skip }, async (t) => {
  const named = fs.readdirSync('/proc/self/task').filter((id) => fs.readFileSync(`/proc/self/task/${id}/comm`, 'utf8').trim() === 'circuit-pump');
  t.equal(named.length, 1);
  const blocked = /SigBlk:\s*([0-9a-f]+)/.exec(fs.readFileSync(`/proc/self/task/${named[0]}/status`, 'utf8'))![1];
  for (const sig of [2, 15, 17]) t.ok(BigInt(`0x${blocked}`) & (1n << BigInt(sig - 1)), `signal ${sig} blocked`);
});

t.test('pump: 64 MiB arrive whole and in order, then the end with errno 0', { skip }, async (t) => {
  // A child writes a pattern that changes every byte position and prints its sha256 to stderr.
  const script = `const c=require('crypto').createHash('sha256');let i=0;function go(){while(i<1024){const b=Buffer.alloc(65536);for(let j=0;j<b.length;j+=4)b.writeUInt32LE(i*65536+j,j);c.update(b);i++;if(!process.stdout.write(b))return process.stdout.once('drain',go);}process.stderr.write(c.digest('hex'));}go();`;
  const [r, w] = outputPipe()!;
  const child = spawn(process.execPath, ['-e', script], { stdio: ['ignore', w, 'pipe'] });
  closeQuietly(w);
  const exited = new Promise((res) => child.on('exit', res));
  let want = '';
  child.stderr!.on('data', (b) => (want += b));
  const h = crypto.createHash('sha256');
  let n = 0, pieces = 0;
  const end = await new Promise<number>((res) => pumpOutput(r, { data: (c) => { h.update(c); n += c.length; pieces++; }, end: res }));
  await exited;
  t.equal(end, 0);
  t.equal(n, 64 * 1024 * 1024);
  t.equal(h.digest('hex'), want, 'same bytes, same order');
  t.ok(pieces < n / 4096, `pieces: ${pieces}`);
});

t.test('pump: pause holds the producer on its full pipe; resume lets it finish', { skip }, async (t) => {
  const r = run('head', ['-c', String(8 << 20), '/dev/zero']);
  await r.data;
  r.src.pause();
  let exited = false;
  void r.exited.then(() => (exited = true));
  // What was read before the pause lands; after that nothing more comes.
  let last = -1;
  for (let i = 0; i < 50 && r.size() !== last; i++) {
    last = r.size();
    await sleep(100);
  }
  t.equal(r.size(), last, 'no more bytes while paused');
  t.ok(r.size() < 8 << 20, `read ${r.size()} of ${8 << 20} before the pause took`);
  t.notOk(exited, 'the producer is blocked, not finished');
  r.src.resume();
  t.equal(await r.ended, 0);
  t.equal(r.size(), 8 << 20);
  t.equal(await r.exited, 0);
});

t.test('pump: a line is handed over as soon as it is written (an interactive program)', { skip }, async (t) => {
  const r = run('/bin/sh', ['-c', 'while read l; do echo "$l"; done']);
  const seen = () => Buffer.concat(r.out).toString();
  for (let i = 0; i < 20; i++) {
    r.child.stdin!.write(`line ${i}\n`);
    // The next line is written only once this one came back: a pump that waited for more
    // bytes before handing over would never hand this one over.
    for (let k = 0; k < 1000 && !seen().endsWith(`line ${i}\n`); k++) await sleep(5);
    if (!seen().endsWith(`line ${i}\n`)) t.fail(`line ${i} did not come back`);
  }
  r.child.stdin!.end();
  t.equal(await r.ended, 0);
  t.equal(seen(), Array.from({ length: 20 }, (_, i) => `line ${i}\n`).join(''));
});

t.test('pump: stop closes the pipe: the producer gets SIGPIPE and nothing more is handed over', { skip }, async (t) => {
  const r = run('yes', []);
  await r.data;
  r.src.stop();
  const at = r.size();
  t.equal(await r.exited, 'SIGPIPE');
  await sleep(50);
  t.equal(r.size(), at, 'no piece after stop');
  r.src.stop(); // a second stop does nothing
  r.src.resume(); // nor does anything after it
});

t.test('pump: many pipes at once, each whole', { skip }, async (t) => {
  const runs = Array.from({ length: 40 }, (_, i) => ({ i, r: run('seq', ['1', String(20000 + i * 1000)]) }));
  for (const { i, r } of runs) {
    t.equal(await r.ended, 0);
    t.equal(Buffer.concat(r.out).toString(), execFileSync('seq', ['1', String(20000 + i * 1000)]).toString(), `seq ${i}`);
  }
});

t.test('proc element: stdout and stderr are pump pipes; without the pump (CIRCUIT_NO_PUMP=1) Node sockets, same output', async (t) => {
  // A fresh node process each way, since the choice is made once per process.
  const server = path.resolve(__dirname, '../../src/node/server.js');
  const script = `
    const { Server } = require(${JSON.stringify(server)});
    (async () => {
      const s = new Server({ stderr: () => {}, graceMs: 500 });
      const p = '/' + s.id + '/x';
      await s.make(p, 'proc', { Env: null, Dir: '', Path: '/bin/sh', Args: ['-c', 'readlink /proc/self/fd/1 /proc/self/fd/2; seq 1 100000; echo err >&2'], Scrub: false });
      const read = async (w) => { const r = await s.openOutput(p, w); const b = []; for (let x; (x = await r.read(1 << 20));) b.push(x); await r.release(); return Buffer.concat(b).toString(); };
      const [out, err] = await Promise.all([read('stdout'), read('stderr')]);
      process.stdout.write(JSON.stringify({ out, err }));
      await s.shutdown();
    })();`;
  const seq = execFileSync('seq', ['1', '100000']).toString();
  for (const [env, kind] of [[{}, skip ? 'socket' : 'pipe'], [{ CIRCUIT_NO_PUMP: '1' }, 'socket']] as const) {
    const { out, err } = JSON.parse(execFileSync(process.execPath, ['-e', script], { env: { ...process.env, ...env } }).toString()) as { out: string; err: string };
    const [fd1, fd2, ...rest] = out.split('\n');
    t.match(fd1, new RegExp(`^${kind}:`), `stdout is a ${kind} (${JSON.stringify(env)})`);
    t.match(fd2, new RegExp(`^${kind}:`), `stderr is a ${kind}`);
    t.equal(rest.join('\n'), seq, 'stdout whole');
    t.equal(err, 'err\n', 'stderr whole');
  }
});

t.test('proc element: a start that fails leaves no descriptor behind', async (t) => {
  const { Server } = await import('../../src/node/server');
  const s = new Server({ stderr: () => {}, graceMs: 500 });
  t.teardown(() => s.shutdown());
  const cmd = (Path: string, Args: string[]) => ({ Env: null, Dir: '', Path, Args, Scrub: false });
  // one of each first, so that whatever is made once (the pump's own thread and descriptors) is there
  // A single argument above the kernel's limit (MAX_ARG_STRLEN, 128 KiB) fails inside spawn itself.
  const huge = 'x'.repeat(200_000);
  await t.rejects(s.make(`/${s.id}/a`, 'proc', cmd('/bin/echo', [huge])));
  await t.rejects(s.make(`/${s.id}/b`, 'proc', cmd('/nonexistent/x', [])));
  const before = fs.readdirSync('/proc/self/fd').length;
  for (let i = 0; i < 10; i++) {
    await t.rejects(s.make(`/${s.id}/n${i}`, 'proc', cmd('/bin/echo', [huge])), /argument list too long/, 'refused at the spawn itself');
    await t.rejects(s.make(`/${s.id}/e${i}`, 'proc', cmd('/nonexistent/x', [])), /no such file or directory/, 'exec fails');
  }
  t.equal(fs.readdirSync('/proc/self/fd').length, before, 'as many descriptors as before');
});
