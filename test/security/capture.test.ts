import t, { type Test } from 'tap';
import { spawn, execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { randomBytes } from 'node:crypto';
import { startServer, cli, type Running } from '../helpers/daemon';

/**
 * Issue 6: a capture of loopback traffic (tcpdump on lo, filtered to the daemon's port) during a
 * `circuit send` of a known 4 KiB message and its `recv` holds no plaintext of it with a key, and
 * does hold it without one (so this test can fail).
 */
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'circuit-sec-capture-'));
t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));

function haveTcpdump(): boolean {
  try {
    execFileSync('tcpdump', ['--version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/** Starts tcpdump on lo for one TCP port; resolves once it listens. stop() ends it with SIGINT. */
async function capture(port: number, file: string): Promise<{ stop(): Promise<string> }> {
  // --immediate-mode: packets reach tcpdump as they come, not in blocks a timer releases (without
  // it a short capture can end with 0 packets); -U: write each as it comes; -Z root: keep the right to write file; -s 0: whole packets
  const p = spawn('tcpdump', ['-i', 'lo', '--immediate-mode', '-U', '-Z', 'root', '-s', '0', '-n', '-w', file, 'tcp', 'port', String(port)], { stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  p.stderr!.on('data', (c) => (err += c));
  const exited = new Promise<number | null>((r) => p.once('close', (c) => r(c)));
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`tcpdump did not start listening: ${err}`)), 10_000);
    const check = () => {
      if (/listening on lo/.test(err)) {
        clearTimeout(timer);
        resolve();
      }
    };
    p.stderr!.on('data', check);
    void exited.then((c) => {
      clearTimeout(timer);
      reject(new Error(`tcpdump exited with ${c}: ${err}`));
    });
  });
  return {
    async stop() {
      await new Promise((r) => setTimeout(r, 300)); // the last packets reach the file
      p.kill('SIGINT');
      const timer = setTimeout(() => p.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(timer);
      return err;
    },
  };
}

function portOf(url: string): number {
  return Number(/^circuit:\/\/[^/]*:(\d+)\//.exec(url)![1]);
}

/** A 4 KiB printable message and a few 16-byte pieces of it to look for. */
function message(): { msg: Buffer; needles: Buffer[] } {
  const msg = Buffer.from(randomBytes(2048).toString('hex')); // 4096 bytes, distinctive
  const needles = [0, 1000, 2040, 4080].map((o) => msg.subarray(o, o + 16));
  return { msg, needles };
}

async function sendRecvCaptured(t: Test, d: Running, env: NodeJS.ProcessEnv, name: string) {
  const { msg, needles } = message();
  const ch = `/${d.id}/capture-${name}`;
  const mk = await cli(d.url, ['mkchan', ch, '1'], '', env);
  t.equal(mk.code, 0, mk.stderr);
  const pcap = path.join(dir, `${name}.pcap`);
  const cap = await capture(portOf(d.url), pcap);
  let capErr = '';
  try {
    const s = await cli(d.url, ['send', ch], msg, env);
    t.equal(s.code, 0, `send: ${s.stderr}`);
    const r = await cli(d.url, ['recv', ch], '', env);
    t.equal(r.code, 0, `recv: ${r.stderr}`);
    t.ok(r.out.equals(msg), 'the message went through');
  } finally {
    capErr = await cap.stop();
  }
  const bytes = fs.readFileSync(pcap);
  const m = /(\d+) packets captured/.exec(capErr);
  t.ok(m && Number(m[1]) > 10, `the capture holds the conversation (${m?.[0]}; ${bytes.length} bytes)`);
  t.ok(bytes.length > msg.length * 2, 'the capture is at least as large as the message went through twice');
  return needles.map((n) => bytes.includes(n));
}

t.test('capture of loopback traffic during send and recv', { skip: haveTcpdump() ? false : 'tcpdump is not installed (scripts/setup.sh)' }, async (t) => {
  const keyFile = path.join(dir, 'key');
  fs.writeFileSync(keyFile, (await cli(null, ['keygen'])).stdout, { mode: 0o600 });
  const env = { CIRCUIT_HMAC: keyFile };
  // The recv's message must cross the connection: with native/fdtake a server on the CLI's host
  // writes it into the CLI's socket-pair stdout itself (src/node/pipe-out.ts), and the capture
  // would hold it once.
  const noTake = { CIRCUIT_NO_FDTAKE: '1' };
  const keyed = await startServer(['--no-mount', '-a', '127.0.0.1:0'], { env: { ...env, ...noTake } });
  t.teardown(() => keyed.stop());
  const plain = await startServer(['--no-mount'], { env: noTake });
  t.teardown(() => plain.stop());

  const found = await sendRecvCaptured(t, keyed, env, 'keyed');
  t.same(found, [false, false, false, false], 'with a key, no 16-byte piece of the message is in the capture');

  const foundPlain = await sendRecvCaptured(t, plain, {}, 'plain');
  t.same(foundPlain, [true, true, true, true], 'without a key, the message is in the capture (the check works)');
});
