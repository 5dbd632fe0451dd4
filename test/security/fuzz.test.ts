import t, { type Test } from 'tap';
import * as dgram from 'node:dgram';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { Packr } from 'msgpackr';
import { startServer, cli, eventually, type Running } from '../helpers/daemon';
import { dial, keyedHandshake } from '../../src/cluster/tcp';
import { handshake, preamble, PREAMBLE_BYTES } from '../../src/cluster/handshake';
import { loadKey } from '../../src/cluster/keys';
import type { Session } from '../../src/cluster/session';

/**
 * Issue 6: a bounded fuzz run against a live daemon's TCP port, with and without a key (random
 * bytes, truncated frames, garbage msgpack in well-formed frames, huge declared lengths, many
 * connections opened and dropped, a request flood past the per-connection cap, and random UDP
 * datagrams at the membership socket on the same port). Afterwards the daemon is alive, answers
 * `circuit peek`, and its RSS grew by less than 200 MB. With a key: a bit flipped in a TLS
 * record (by a proxy, in either direction) closes that connection while others keep working, and
 * a recorded session replayed on a new connection is refused and has no effect.
 */
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'circuit-sec-fuzz-'));
t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
const keyFile = path.join(dir, 'key');

/** Deterministic randomness (mulberry32), so a failing run can be repeated. */
const SEED = Number(process.env.FUZZ_SEED ?? 0x5ec0de);
function rng(seed: number) {
  let a = seed >>> 0;
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let x = a;
    x = Math.imul(x ^ (x >>> 15), x | 1);
    x ^= x + Math.imul(x ^ (x >>> 7), x | 61);
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296;
  };
  const int = (n: number) => Math.floor(next() * n);
  const bytes = (n: number) => {
    const b = Buffer.allocUnsafe(n);
    for (let i = 0; i < n; i++) b[i] = int(256);
    return b;
  };
  return { next, int, bytes };
}

const portOf = (url: string) => Number(/^circuit:\/\/[^/]*:(\d+)\//.exec(url)![1]);
const frame = (body: Buffer) => Buffer.concat([len(body.length), body]);
const len = (n: number) => {
  const h = Buffer.alloc(4);
  h.writeUInt32BE(n >>> 0, 0);
  return h;
};
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function rssOf(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
  return Number(m![1]) * 1024;
}

/**
 * One raw connection: writes the chunks (a pause between them), then waits up to holdMs for the
 * server to close it, then drops it. Resolves with whether the server closed it and what it sent.
 */
function raw(port: number, chunks: Buffer[], holdMs = 100, end = false): Promise<{ closedByServer: boolean; got: Buffer }> {
  return new Promise((resolve) => {
    const sock = net.connect(port, '127.0.0.1');
    const got: Buffer[] = [];
    let closedByServer = false;
    let done = false;
    const finish = () => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      sock.destroy();
      resolve({ closedByServer, got: Buffer.concat(got) });
    };
    const timer = setTimeout(finish, 10_000);
    sock.on('data', (c) => got.push(c));
    sock.on('error', () => {
      closedByServer = true;
      finish();
    });
    sock.on('end', () => {
      closedByServer = true;
      finish();
    });
    sock.on('close', () => {
      closedByServer ||= !done;
      finish();
    });
    sock.once('connect', async () => {
      for (const c of chunks) {
        if (done) return;
        sock.write(c);
        await sleep(1);
      }
      if (end) sock.end();
      setTimeout(finish, holdMs);
    });
  });
}

/** Runs fns with at most `width` at once. */
async function pool<T>(n: number, width: number, fn: (i: number) => Promise<T>): Promise<T[]> {
  const out: T[] = [];
  let i = 0;
  await Promise.all(
    Array.from({ length: width }, async () => {
      while (i < n) {
        const k = i++;
        out[k] = await fn(k);
      }
    }),
  );
  return out;
}

const packr = new Packr({ useRecords: false, moreTypes: false } as never);

/** Frame bodies that are well-formed frames of bad messages. */
function garbageBodies(r: ReturnType<typeof rng>): Buffer[] {
  const hand = [
    Buffer.alloc(0),
    Buffer.from([0xc1]), // never used in msgpack
    Buffer.from([0xdd, 0xff, 0xff, 0xff, 0xff]), // array32 of 4 G elements
    Buffer.from([0xdd, 0x7f, 0xff, 0xff, 0xff, 0x00]),
    Buffer.from([0xdb, 0xff, 0xff, 0xff, 0xff, 0x41]), // str32 of 4 GB
    Buffer.from([0xc6, 0x7f, 0xff, 0xff, 0xff]), // bin32 of 2 GB
    Buffer.from([0xdf, 0xff, 0xff, 0xff, 0xff]), // map32 of 4 G pairs
    Buffer.from([0xc9, 0xff, 0xff, 0xff, 0xff, 0x01]), // ext32
    Buffer.alloc(2000, 0x91), // 2000 nested one-element arrays
    packr.pack({ a: 1 }),
    packr.pack([99]),
    // well-formed messages with bad contents from here on
    packr.pack([0, 'not-an-id', 5, null]),
    packr.pack([0, 1, 'recv', null]),
    packr.pack([0, 2, 'constructor', [1, 2]]),
    packr.pack([0, 3, '__proto__', []]),
    packr.pack([0, 4, 'toString', []]),
    packr.pack([0, 5, 'stop', ['/Xffffffffffffffff']]),
    packr.pack([0, 6, 'ls', [{ toString: 1 }]]),
    packr.pack([0, 7, 'write', [99999, 'x']]),
    packr.pack([0, 8, 'read', [-1, 1e12]]),
    packr.pack([5, 1, false, Buffer.alloc(10)]), // a chunk of a stream never finished
    packr.pack([6, 999, 1e9]), // credit for nothing
    packr.pack([1, 12345, true, null]), // an answer to nothing
    packr.pack([2, 777]), // cancel of nothing
    packr.pack([7, 'ack', 'x']),
  ];
  const rand = Array.from({ length: 40 }, () => r.bytes(1 + r.int(300)));
  return [...hand, ...rand];
}

/**
 * What a phase's connections send first: the dialer's preamble of the daemon's mode, so frames
 * reach the session (keyless) or garbage reaches TLS (keyed). Set per daemon by fuzzDaemon.
 */
let lead: Buffer = Buffer.alloc(0);

interface Phase {
  name: string;
  run(port: number, r: ReturnType<typeof rng>): Promise<unknown>;
}

const PHASES: Phase[] = [
  {
    name: 'random bytes',
    run: (port, r) => pool(150, 25, () => raw(port, Array.from({ length: 1 + r.int(6) }, () => r.bytes(1 + r.int(4096))), 50)),
  },
  {
    name: 'truncated frames',
    run: (port, r) =>
      pool(100, 25, (i) => {
        const n = 1 + r.int(64 * 1024);
        const body = r.bytes(n);
        const cut = frame(body).subarray(0, 1 + r.int(n + 3));
        return raw(port, [lead, cut], 30, i % 2 === 0);
      }),
  },
  {
    name: 'well-formed frames of garbage msgpack',
    run: async (port, r) => {
      const bodies = garbageBodies(r);
      await pool(bodies.length, 20, (i) => raw(port, [lead, frame(bodies[i]!)], 50));
      // and all of them on one connection, in order
      await raw(port, [lead, ...bodies.map(frame)], 200);
    },
  },
  {
    name: 'huge declared lengths',
    run: (port, r) => {
      const lens = [0xffffffff, 0x80000000, 0x7fffffff, 0x10000000, (1 << 20) + 65, (1 << 20) + 64 + 1, 1 << 24];
      return pool(lens.length * 4, 14, (i) => raw(port, [lead, Buffer.concat([len(lens[i % lens.length]!), r.bytes(r.int(64))])], 50));
    },
  },
  {
    name: 'connections opening max-size frames at once',
    run: async (port) => {
      // 300 connections each declaring a 1 MiB frame and sending 1 KiB of it, all held open together
      const socks: net.Socket[] = [];
      try {
        await pool(300, 50, async () => {
          const s = net.connect(port, '127.0.0.1');
          s.on('error', () => {});
          socks.push(s);
          await new Promise((res) => s.once('connect', res).once('close', res));
          s.write(Buffer.concat([lead, len(1 << 20), Buffer.alloc(1024, 0x90)]));
        });
        await sleep(300);
      } finally {
        for (const s of socks) s.destroy();
      }
    },
  },
  {
    name: 'many connections opened and dropped',
    run: (port) =>
      pool(1000, 100, () =>
        new Promise<void>((res) => {
          const s = net.connect(port, '127.0.0.1');
          s.on('error', () => res());
          s.once('connect', () => {
            s.destroy();
            res();
          });
        }),
      ),
  },
];

/** Random datagrams (and copies of a sealed-looking header) at the membership UDP socket. */
async function udpFuzz(port: number, r: ReturnType<typeof rng>): Promise<void> {
  const s = dgram.createSocket('udp4');
  await new Promise<void>((res) => s.bind(0, '127.0.0.1', () => res()));
  try {
    for (let i = 0; i < 2000; i++) {
      const b = i % 3 === 0 ? Buffer.concat([Buffer.from('CRKD\x01\x01'), r.bytes(r.int(1400))]) : r.bytes(r.int(1400));
      await new Promise<void>((res) => s.send(b, port, '127.0.0.1', () => res()));
      if (i % 100 === 0) await sleep(5);
    }
  } finally {
    s.close();
  }
}

/** A session that floods one connection with requests that block (recv on an empty channel). */
async function flood(t: Test, d: Running, session: Session, env: NodeJS.ProcessEnv): Promise<void> {
  const ch = `/${d.id}/flood`;
  const mk = await cli(d.url, ['mkchan', ch, '0'], '', env);
  t.equal(mk.code, 0, mk.stderr);
  const N = 5000;
  const results = Array.from({ length: N }, () => session.call('recv', [ch]).then(() => 'ok', (e: { code?: string }) => e.code ?? 'error'));
  const count = async () => {
    const settled = await Promise.all(results.map((p) => Promise.race([p, sleep(0).then(() => 'pending')])));
    return { eagain: settled.filter((s) => s === 'EAGAIN').length, pending: settled.filter((s) => s === 'pending').length };
  };
  await eventually(async () => (await count()).eagain >= N - 4096, 10_000, 200).catch(() => undefined);
  await sleep(300); // nothing more is refused, nothing is answered
  const refused = await count();
  t.equal(refused.eagain, N - 4096, `requests past the cap of 4096 are refused with EAGAIN (${refused.eagain})`);
  t.equal(refused.pending, 4096, 'the others wait');
  const peek = await cli(d.url, ['peek', ch], '', env);
  t.equal(peek.code, 0, `the daemon answers others during the flood: ${peek.stderr}`);
  session.destroy();
}

async function fuzzDaemon(t: Test, d: Running, env: NodeJS.ProcessEnv, keyed: boolean): Promise<void> {
  const port = portOf(d.url);
  const pid = d.proc.pid!;
  const r = rng(SEED + (keyed ? 1 : 0));
  const rss0 = rssOf(pid);
  let peak = rss0;
  lead = preamble('dialer', keyed ? 1 : 0);
  for (const ph of PHASES) {
    const t0 = Date.now();
    await ph.run(port, r);
    peak = Math.max(peak, rssOf(pid));
    t.equal(d.proc.exitCode, null, `alive after ${ph.name} (${Date.now() - t0} ms)`);
  }
  await udpFuzz(port, r);
  t.equal(d.proc.exitCode, null, 'alive after random UDP datagrams');

  // a request flood beyond the per-connection cap, from a peer that passed the handshake
  const key = keyed ? loadKey(keyFile) : null;
  await flood(t, d, await dial('127.0.0.1', port, { handshake: keyedHandshake(key) }), env);

  if (keyed) {
    // a key holder sending sealed garbage: closed, not crashed
    const bodies = garbageBodies(r);
    for (let i = 0; i < bodies.length; i++) {
      const sock = net.connect(port, '127.0.0.1');
      sock.on('error', () => {});
      await new Promise((res) => sock.once('connect', res));
      const s = await handshake(sock, key!, 'dialer');
      s.on('error', () => {});
      const closed = new Promise<boolean>((res) => {
        s.once('close', () => res(true));
        setTimeout(() => res(false), 3000);
      });
      s.write(frame(bodies[i]!));
      s.resume();
      // the first eleven are not messages at all (undecodable, or not an array, or an unknown type)
      if (i <= 10) t.ok(await closed, `a frame of garbage #${i} inside TLS closes the connection`);
      s.destroy();
    }
  }

  await sleep(500);
  const rss1 = rssOf(pid);
  peak = Math.max(peak, rss1);
  t.ok(rss1 - rss0 < 200 * 2 ** 20, `RSS ${(rss0 / 2 ** 20).toFixed(0)} MB → ${(rss1 / 2 ** 20).toFixed(0)} MB (peak ${(peak / 2 ** 20).toFixed(0)} MB): less than +200 MB`);
  t.equal(d.proc.exitCode, null, 'the daemon is alive');
  const peek = await cli(d.url, ['peek', `/${d.id}`], '', env);
  t.equal(peek.code, 0, `and answers circuit peek: ${peek.stderr}`);
  const ls = await cli(d.url, ['ls', '/'], '', env);
  t.equal(ls.stdout, `/${d.id}\n`);
  t.notMatch(d.stderr(), /Uncaught|TypeError|RangeError|\n\s+at /, 'no stack traces on stderr');
}

t.test('fuzz without a key', async (t) => {
  const d = await startServer(['--no-mount']);
  t.teardown(() => d.stop());
  await fuzzDaemon(t, d, {}, false);
});

t.test('fuzz with a key', async (t) => {
  fs.writeFileSync(keyFile, (await cli(null, ['keygen'])).stdout, { mode: 0o600 });
  const env = { CIRCUIT_HMAC: keyFile };
  const d = await startServer(['--no-mount', '-a', '127.0.0.1:0'], { env });
  t.teardown(() => d.stop());
  await fuzzDaemon(t, d, env, true);
});

/**
 * A TCP proxy to the daemon that records what each side sends and may flip one bit at a given
 * offset of one direction's byte stream. `upstreamClosed` resolves when the daemon closes.
 */
interface Conn {
  c2s: Buffer[];
  s2c: Buffer[];
  upstreamClosedByServer: Promise<boolean>;
}
async function proxy(port: number, flip: { dir: 'c2s' | 's2c'; at: number } | null): Promise<{ port: number; conns: Conn[]; close(): void }> {
  const conns: Conn[] = [];
  const socks = new Set<net.Socket>();
  const server = net.createServer((down) => {
    const up = net.connect(port, '127.0.0.1');
    socks.add(down).add(up);
    const conn: Conn = { c2s: [], s2c: [], upstreamClosedByServer: new Promise((res) => up.once('end', () => res(true)).once('error', () => res(true)).once('close', () => res(false))) };
    conns.push(conn);
    const pos = { c2s: 0, s2c: 0 };
    const pass = (which: 'c2s' | 's2c', chunk: Buffer, to: net.Socket) => {
      let c = chunk;
      if (flip && flip.dir === which && flip.at >= pos[which] && flip.at < pos[which] + c.length) {
        c = Buffer.from(c);
        c[flip.at - pos[which]]! ^= 0x10;
      }
      pos[which] += chunk.length;
      conn[which].push(Buffer.from(chunk));
      to.write(c);
    };
    down.on('data', (c: Buffer) => pass('c2s', c, up));
    up.on('data', (c: Buffer) => pass('s2c', c, down));
    down.on('end', () => up.end());
    up.on('end', () => down.end());
    down.on('error', () => up.destroy());
    up.on('error', () => down.destroy());
    down.on('close', () => up.destroy());
    up.on('close', () => down.destroy());
  });
  await new Promise<void>((res) => server.listen(0, '127.0.0.1', () => res()));
  return {
    port: (server.address() as net.AddressInfo).port,
    conns,
    close() {
      for (const s of socks) s.destroy();
      server.close();
    },
  };
}

/** Offsets of the TLS records in one direction of a recorded connection (after the preamble). */
function tlsRecords(bytes: Buffer): Array<{ at: number; type: number; len: number }> {
  const out: Array<{ at: number; type: number; len: number }> = [];
  for (let i = PREAMBLE_BYTES; i + 5 <= bytes.length; i += 5 + bytes.readUInt16BE(i + 3)) {
    out.push({ at: i, type: bytes[i]!, len: bytes.readUInt16BE(i + 3) });
  }
  return out;
}

t.test('with a key: a flipped bit closes that connection, others keep working; a replayed session is refused', async (t) => {
  if (!fs.existsSync(keyFile)) fs.writeFileSync(keyFile, (await cli(null, ['keygen'])).stdout, { mode: 0o600 });
  const env = { CIRCUIT_HMAC: keyFile };
  const d = await startServer(['--no-mount', '-a', '127.0.0.1:0'], { env });
  t.teardown(() => d.stop());
  const port = portOf(d.url);
  const via = (p: number) => d.url.replace(/:\d+\//, `:${p}/`);

  // the proxy itself passes a conversation unharmed (so the failures below are the flips)
  const clean = await proxy(port, null);
  t.teardown(() => clean.close());
  const ok = await cli(via(clean.port), ['ls', '/'], '', env);
  t.equal(ok.stdout, `/${d.id}\n`, 'through the proxy, unaltered: served');
  await sleep(100);
  // where to flip: inside the client's first record after its Finished (its first request), and
  // inside the server's Finished and the record after it (in TLS 1.3 all are sealed records)
  const c2s = tlsRecords(Buffer.concat(clean.conns[0]!.c2s)).filter((r) => r.type === 0x17);
  const s2c = tlsRecords(Buffer.concat(clean.conns[0]!.s2c)).filter((r) => r.type === 0x17);
  t.ok(c2s.length >= 2 && s2c.length >= 3, `TLS records seen: ${c2s.length} up, ${s2c.length} down`);
  const flips = { c2s: [c2s[1]!.at + 5 + 1, c2s[1]!.at + 5 + c2s[1]!.len - 1], s2c: [s2c[1]!.at + 5 + 2, s2c[2]!.at + 5 + 2] };

  // a long-lived session directly to the daemon, to show others keep working
  const other = await dial('127.0.0.1', port, { handshake: keyedHandshake(loadKey(keyFile)) });
  t.teardown(() => other.destroy());
  t.ok(await other.call('hello', [{}]), 'a direct session');

  for (const dir of ['c2s', 's2c'] as const) {
    for (const at of flips[dir]) {
      const px = await proxy(port, { dir, at });
      const r = await cli(via(px.port), ['ls', '/'], '', env);
      t.equal(r.code, 1, `a bit flipped at byte ${at} ${dir === 'c2s' ? 'client → server' : 'server → client'}: the command fails (${r.stderr.trim()})`);
      t.match(r.stderr, /^circuit: [^\n]+\n$/, 'with one line');
      px.close();
      t.ok(await other.call('hello', [{}]), 'the other session still works');
    }
  }
  const fresh = await cli(d.url, ['ls', '/'], '', env);
  t.equal(fresh.stdout, `/${d.id}\n`, 'new connections still work');

  // record a conversation that makes a channel, remove the channel, then replay the recording
  const rec = await proxy(port, null);
  t.teardown(() => rec.close());
  const ch = `/${d.id}/replayed`;
  const good = await cli(via(rec.port), ['mkchan', ch, '0'], '', env);
  t.equal(good.code, 0, good.stderr);
  await sleep(100);
  t.equal((await cli(d.url, ['scrub', ch], '', env)).code, 0);
  const recorded = Buffer.concat(rec.conns[0]!.c2s);
  t.ok(recorded.length > PREAMBLE_BYTES + 200, `recorded ${recorded.length} bytes`);
  const before = (d.stderr().match(/handshake from [^\n]* refused/g) ?? []).length;
  const res = await raw(port, [recorded], 3000);
  t.equal(res.closedByServer, true, 'the daemon closes a replayed session');
  await eventually(() => (d.stderr().match(/handshake from [^\n]* refused/g) ?? []).length >= before + 1);
  t.pass('the daemon logged the replay as a refused handshake');
  const peek = await cli(d.url, ['peek', ch], '', env);
  t.notMatch(peek.stdout, /Cap/, `the replayed mkchan did not run: no channel there (${peek.stdout.trim()})`);
  t.equal(d.proc.exitCode, null);
});

/**
 * Half-finished streams: CHUNK messages that never end would hold their bytes on the receiving
 * side; the session caps them (maxAssembly), so one connection sending 300 MiB of them is cut off.
 */
t.test('unfinished chunked streams do not hold unbounded memory', async (t) => {
  const d = await startServer(['--no-mount']);
  t.teardown(() => d.stop());
  const pid = d.proc.pid!;
  const rss0 = rssOf(pid);
  const sock = net.connect(portOf(d.url), '127.0.0.1');
  sock.on('error', () => {});
  await new Promise((res) => sock.once('connect', res));
  sock.write(preamble('dialer', 0));
  sock.resume(); // the preamble and CREDIT answers
  const data = Buffer.alloc((1 << 20) - 64, 0x61);
  let peak = rss0;
  for (let i = 0; i < 300 && !sock.destroyed; i++) {
    const ok = sock.write(frame(packr.pack([5, 1 + (i % 50), false, data])));
    // the daemon may cut us off: then 'close' comes instead of 'drain'
    if (!ok) await new Promise((res) => { sock.once('drain', res); sock.once('close', res); });
    if (i % 50 === 49) peak = Math.max(peak, rssOf(pid));
  }
  await sleep(500);
  peak = Math.max(peak, rssOf(pid));
  sock.destroy();
  t.ok(peak - rss0 < 200 * 2 ** 20, `RSS ${(rss0 / 2 ** 20).toFixed(0)} MB → peak ${(peak / 2 ** 20).toFixed(0)} MB while one connection sent 300 MiB of never-finished chunks: less than +200 MB`);
  await sleep(500);
  t.comment(`RSS 0.5 s after the connection closed: ${(rssOf(pid) / 2 ** 20).toFixed(0)} MB (freed at the next GC)`);
  await eventually(() => /rejecting connection: too much from 127\.0\.0\.1:\d+: more than \d+ bytes of unfinished messages/.test(d.stderr()), 3000).catch(() => undefined);
  t.match(d.stderr(), /rejecting connection: too much from 127\.0\.0\.1:\d+: more than \d+ bytes of unfinished messages/, 'the daemon cut the peer off and said so');
  t.equal(d.proc.exitCode, null);
});
