/**
 * Streams pushed on a data connection (src/node/push.ts), in-process against a real daemon over
 * TCP: the reader's side plays the mount's FUSE thread itself (it reads the lent connection and
 * writes the acknowledgements), so the test sees every step that the mount takes. Every reader's
 * bytes, put together, must be the process's output exactly: nothing lost, nothing twice. The
 * mount's cat of another server's output runs end to end in test/mesh/exactly-once.test.ts.
 */
import t from 'tap';
import fs = require('node:fs');
import os = require('node:os');
import path = require('node:path');
import { execFileSync } from 'node:child_process';
import { startDaemon, type Daemon } from '../../src/node/daemon';
import { connect, type RemoteClient } from '../../src/client/remote';
import { keyedHandshake } from '../../src/cluster/tcp';
import { ReadAhead, withReadAhead } from '../../src/node/read-ahead';
import { canReadPush, ACK_BYTES } from '../../src/node/push';
import { fdtake } from '../../src/node/fdtake';
import type { OutputReader } from '../../src/api/types';

const skip = canReadPush() ? false : 'needs native/fdtake built with the output pump and dupFd (scripts/build-native.sh)';
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'circuit-push-'));
const closers: Array<() => Promise<void>> = [];
t.teardown(async () => {
  for (const c of closers.reverse()) await c().catch(() => {});
  fs.rmSync(dir, { recursive: true, force: true });
});

const LINES = 3_000_000; // 20.9 MB
const expected = execFileSync('seq', ['1', String(LINES)], { maxBuffer: 64 << 20 });

async function home(key?: Buffer): Promise<{ d: Daemon; client: RemoteClient }> {
  const handshake = key ? keyedHandshake(key) : undefined;
  const d = await startDaemon({ varDir: fs.mkdtempSync(path.join(dir, 'v-')), stderr: () => {}, handshake });
  const client = await connect(d.url, { handshake, timeoutMs: 3000 });
  closers.push(async () => {
    await client.disconnect();
    await d.close();
  });
  return { d, client };
}

/** A process printing 1..LINES in bursts, so the stream flows for a while. */
async function seqProc(client: RemoteClient, p: string): Promise<void> {
  const burst = 250_000;
  const script = `i=1; while [ $i -le ${LINES} ]; do seq $i $((i + ${burst} - 1)); i=$((i + ${burst})); sleep 0.02; done`;
  await client.make(p, 'proc', { Env: null, Dir: '', Path: '/bin/sh', Args: ['-c', script], Scrub: false });
}

/** Reads through r until the stream can be lent (it is pushed) or `limit` bytes came; the bytes and the offset. */
async function readUntilLent(r: OutputReader, limit: number, revoke: () => void): Promise<{ got: Buffer[]; at: number; lent?: { fd: number; ackAt: number } }> {
  const got: Buffer[] = [];
  let at = 0;
  while (at < limit) {
    const l = at >= 3 << 20 ? r.lendPipe!(at, revoke) : undefined;
    if (l !== undefined) {
      if (typeof l === 'number') throw new Error('a remote stream lent as a pipe');
      return { got, at, lent: l };
    }
    const b = await r.read(256 << 10, undefined, at);
    if (b === null) break;
    got.push(Buffer.from(b));
    at += b.length;
  }
  return { got, at };
}

/** What the FUSE thread does with a lent connection: reads up to n bytes, acknowledging as it goes. */
async function borrow(lent: { fd: number; ackAt: number }, n: number): Promise<Buffer[]> {
  const out: Buffer[] = [];
  let count = 0;
  const b = Buffer.alloc(128 << 10);
  while (count < n) {
    let k: number;
    try {
      k = fs.readSync(lent.fd, b, 0, Math.min(b.length, n - count), null);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EAGAIN') throw e;
      await new Promise((r) => setTimeout(r, 2));
      continue;
    }
    if (k === 0) break;
    // the reader came back: everything before this read was passed on
    const ack = Buffer.alloc(ACK_BYTES);
    ack.writeBigUInt64LE(BigInt(lent.ackAt + count));
    fdtake()!.sendNb(lent.fd, ack, 0, ACK_BYTES);
    out.push(Buffer.from(b.subarray(0, k)));
    count += k;
  }
  return out;
}

/** Reads r from offset at to the end of the stream: the bytes, and the end offset. */
async function readToEnd(r: OutputReader, at = 0): Promise<{ got: Buffer[]; at: number }> {
  const got: Buffer[] = [];
  for (;;) {
    const b = await r.read(1 << 20, undefined, at);
    if (b === null) return { got, at };
    got.push(Buffer.from(b));
    at += b.length;
  }
}

async function readAll(client: RemoteClient, p: string): Promise<Buffer> {
  const r = await client.openOutput(p, 'stdout');
  const { got, at } = await readToEnd(r);
  await r.release(at);
  return Buffer.concat(got);
}

t.test('push: a lent connection read, reclaimed and released; the next reader gets exactly the rest', { skip }, async (t) => {
  const { d, client } = await home();
  const p = `/${d.server.id}/push/a`;
  await seqProc(client, p);
  const r = withReadAhead(await client.openOutput(p, 'stdout'), false, true) as ReadAhead;
  let revoked = false;
  const first = await readUntilLent(r, 16 << 20, () => (revoked = true));
  t.ok(first.lent, `the stream was pushed and lent after ${first.at} bytes read ahead`);
  if (!first.lent) return;
  t.equal(first.lent.ackAt, first.at, 'lent at the reader\'s offset');
  t.same(d.push!.begun, { pump: 1, js: 0 }, `the home's output pump pushes the stream${d.push!.jsWhy ? ` (not: ${d.push!.jsWhy})` : ''}`);
  const borrowed = await borrow(first.lent, 2 << 20);
  const count = borrowed.reduce((n, b) => n + b.length, 0);
  t.ok(count > 0, `the borrower read ${count} bytes off the connection`);
  const keep = borrowed[borrowed.length - 1]!;
  r.reclaim!(count, keep);
  t.notOk(revoked, 'nothing revoked the lend');
  // and JavaScript reads on from the pushed stream
  const more = await r.read(64 << 10, undefined, first.at + count);
  t.ok(more && more.length > 0, 'a read after the reclaim goes on where the borrower stopped');
  // the reader passes on everything but the last answer: that one stays for the next reader
  const at = first.at + count;
  // the next reader opens at once, while the home still takes back what its pump pushed: it
  // waits for that, it does not get EBUSY
  const released = r.release(at);
  const rest = await readAll(client, p);
  await released;
  const all = Buffer.concat([...first.got, ...borrowed, rest]);
  t.equal(all.length, expected.length, 'as many bytes as the process wrote');
  t.ok(all.equals(expected), 'every byte once, in order');
});

t.test('push: a reader that vanishes leaves everything it did not acknowledge', { skip }, async (t) => {
  const { d, client } = await home();
  const p = `/${d.server.id}/push/b`;
  await seqProc(client, p);
  const r = withReadAhead(await client.openOutput(p, 'stdout'), false, true) as ReadAhead;
  const first = await readUntilLent(r, 16 << 20, () => {});
  t.ok(first.lent, 'pushed');
  if (!first.lent) return;
  const borrowed = await borrow(first.lent, 1 << 20);
  const count = borrowed.reduce((n, b) => n + b.length, 0);
  // acknowledged: everything before the borrower's last read (each read acknowledges the ones before)
  const lastLen = borrowed[borrowed.length - 1]!.length;
  r.reclaim!(count, borrowed[borrowed.length - 1]!);
  await new Promise((res) => setTimeout(res, 100)); // the acknowledgements reach the home
  r.abandon();
  await new Promise((res) => setTimeout(res, 100));
  const rest = await readAll(client, p);
  const acked = first.at + count - lastLen;
  const all = Buffer.concat([Buffer.concat([...first.got, ...borrowed]).subarray(0, acked), rest]);
  t.ok(all.equals(expected), `every byte once: ${acked} acknowledged by the one that vanished, the rest to the next`);
});

t.test('push: the home closes the connection at the end; the reader sees the end only then', { skip }, async (t) => {
  // pushed by the home's output pump, then by JavaScript (CIRCUIT_NO_PUMP_PUSH=1, as for a
  // container's output, which has no pump)
  for (const by of ['pump', 'js'] as const) {
    if (by === 'js') process.env.CIRCUIT_NO_PUMP_PUSH = '1';
    t.teardown(() => delete process.env.CIRCUIT_NO_PUMP_PUSH);
    const { d, client } = await home();
    const p = `/${d.server.id}/push/c`;
    await seqProc(client, p);
    const r = withReadAhead(await client.openOutput(p, 'stdout'), false, true) as ReadAhead;
    const { got, at } = await readToEnd(r);
    t.equal(r.pushing, 'on', `${by}: the stream was pushed`);
    t.same(d.push!.begun, { pump: by === 'pump' ? 1 : 0, js: by === 'js' ? 1 : 0 }, `${by}: pushed by ${by}`);
    await r.release(at);
    t.ok(Buffer.concat(got).equals(expected), `${by}: a reader in JavaScript alone gets every byte, pushed or read ahead`);
  }
});

t.test('push: a home with a cluster key does not push; reads ahead carry the stream', { skip }, async (t) => {
  const { d, client } = await home(Buffer.alloc(32, 7));
  const p = `/${d.server.id}/push/k`;
  await seqProc(client, p);
  const r = withReadAhead(await client.openOutput(p, 'stdout'), false, true) as ReadAhead;
  const first = await readUntilLent(r, 12 << 20, () => {});
  t.notOk(first.lent, 'never lent');
  t.equal(r.pushing, 'off', 'the home said it does not push');
  const rest = await readToEnd(r, first.at);
  await r.release(rest.at);
  t.ok(Buffer.concat([...first.got, ...rest.got]).equals(expected), 'every byte once, in order');
});

t.test('push: a data connection with a token nobody handed out is refused', { skip }, async (t) => {
  const { d } = await home();
  const { dialData } = await import('../../src/cluster/tcp');
  const u = new URL(d.url.replace('circuit://', 'http://'));
  await t.rejects(dialData(u.hostname, Number(u.port), Buffer.alloc(16, 1), 2000), { code: 'EACCES' });
});
