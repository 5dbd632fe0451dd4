/**
 * The server's side of `circuit stdout` written by the server (src/node/pipe-out.ts), called
 * through the client API against a real daemon with targets a CLI would not send: which
 * descriptors of which processes a server takes, and what it refuses ('refused', leaving the
 * stream unread for the CLI to copy itself). The descriptors belong to a `sleep` this test
 * starts, whose stdout is a file, a socket pair or a pipe.
 */
import t from 'tap';
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { connect, type RemoteClient } from '../../src/client/remote';
import type { PipeTarget } from '../../src/api/types';
import { pidNamespace } from '../../src/kit/pid';
import { startServer, cli, eventually, haveFdtake, osPipe, type Running } from '../helpers/daemon';

let d: Running;
let client: RemoteClient;
let n = 0;
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'circuit-pipe-out-'));

t.before(async () => {
  d = await startServer();
  client = await connect(d.url);
});
t.teardown(async () => {
  client.disconnect();
  await d.stop();
  fs.rmSync(dir, { recursive: true, force: true });
});

/** A process whose stream is `seq 1 3`, unread. */
async function seq3(): Promise<string> {
  const p = `/${d.id}/pipe-out-${n++}`;
  const r = await cli(d.url, ['mkproc', p], JSON.stringify({ Path: 'seq', Args: ['1', '3'] }));
  if (r.code !== 0) throw new Error(r.stderr);
  return p;
}

/** A sleep holding `out` as its stdout (killed at teardown), and the target naming that. */
function holder(tt: { teardown(fn: () => unknown): void }, out: number | 'pipe'): { proc: ChildProcess; target: PipeTarget } {
  const proc = spawn('sleep', ['60'], { stdio: ['ignore', out, 'ignore'] });
  tt.teardown(() => proc.kill('SIGKILL'));
  const st = fs.statSync(`/proc/${proc.pid}/fd/1`, { bigint: true });
  return { proc, target: { pid: proc.pid!, fd: 1, dev: String(st.dev), ino: String(st.ino), pidns: pidNamespace() } };
}

t.test('a file held by another process: written at its offset; refused for another pid namespace, a wrong inode, no namespace, nonsense', { skip: haveFdtake ? false : 'needs native/fdtake built and pidfd_getfd(2)' }, async (t) => {
  const f = path.join(dir, 'held.txt');
  const fd = fs.openSync(f, 'w');
  fs.writeSync(fd, 'before\n');
  const { target } = holder(t, fd);
  fs.closeSync(fd);
  const p = await seq3();
  for (const [why, bad] of [
    ['another pid namespace', { ...target, pidns: 'pid:[1]' }],
    ['another inode', { ...target, ino: String(BigInt(target.ino) + 1n) }],
    ['no namespace (a CLI older than that field names only pipes)', { ...target, pidns: undefined }],
    ['a descriptor the process does not have', { ...target, fd: 77 }],
    ['a process that does not exist', { ...target, pid: 0x7ffffffe }],
    ['nonsense', { pid: -1, fd: 'x', dev: 1, ino: null }],
  ] as const) {
    t.equal(await client.copyOutput(p, 'stdout', bad as unknown as PipeTarget), 'refused', why);
  }
  t.equal(fs.readFileSync(f, 'utf8'), 'before\n', 'nothing written while refused');
  t.equal(await client.copyOutput(p, 'stdout', target), 6, 'the named file: written');
  t.equal(fs.readFileSync(f, 'utf8'), 'before\n1\n2\n3\n', 'at the offset its holder had, after what it wrote');
});

t.test('a socket pair held by another process: its reader gets the stream', { skip: haveFdtake ? false : 'needs native/fdtake built and pidfd_getfd(2)' }, async (t) => {
  const { proc, target } = holder(t, 'pipe');
  const got: Buffer[] = [];
  proc.stdout!.on('data', (c: Buffer) => got.push(c));
  const p = await seq3();
  t.equal(await client.copyOutput(p, 'stdout', target), 6);
  await eventually(() => Buffer.concat(got).length >= 6, 5000, 10);
  t.equal(Buffer.concat(got).toString(), '1\n2\n3\n');
});

t.test('a pipe: taken with or without a namespace (as from an older CLI), never from another namespace', async (t) => {
  const pipe = osPipe();
  const { target } = holder(t, pipe.writeFd);
  fs.closeSync(pipe.writeFd);
  const got: Buffer[] = [];
  pipe.read.on('data', (c: Buffer) => got.push(c));
  t.teardown(() => pipe.read.destroy());
  const p = await seq3();
  t.equal(await client.copyOutput(p, 'stdout', { ...target, pidns: 'pid:[1]' }), 'refused', 'another pid namespace');
  t.equal(await client.copyOutput(p, 'stdout', { ...target, pidns: undefined }), 6, 'no namespace: a pipe is taken as before');
  const q = await seq3();
  t.equal(await client.copyOutput(q, 'stdout', target), 6, 'this namespace');
  await eventually(() => Buffer.concat(got).length >= 12, 5000, 10);
  t.equal(Buffer.concat(got).toString(), '1\n2\n3\n1\n2\n3\n');
});
