import t, { type Test } from 'tap';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { randomBytes } from 'node:crypto';
import { handshake, preamble, DIAL_REFUSED, PREAMBLE_BYTES } from '../../src/cluster/handshake';
import { startServer, cli, spawnCircuit, cleanEnv, eventually, type Running, type Result } from '../helpers/daemon';

/**
 * Issue 6, keys end to end: real daemons and the real CLI. A keyed daemon serves clients with its
 * key and refuses every other client with the one-line dial refusal, logs the refusal and keeps
 * serving; key-file problems are errors with their own messages, never plaintext; bind defaults.
 */
const REFUSED = 'circuit: addressed server is gone or authentication failed\n';
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'circuit-sec-keys-'));
t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
const file = (name: string, text: string) => {
  const f = path.join(dir, name);
  fs.writeFileSync(f, text, { mode: 0o600 });
  return f;
};

let key = '';
let keyed: Running;
let plain: Running;

t.before(async () => {
  const k = await cli(null, ['keygen']);
  key = file('key', k.stdout);
  keyed = await startServer(['--no-mount', '-a', '127.0.0.1:0', '--hmac', key], { env: { CIRCUIT_HMAC: key } });
  plain = await startServer(['--no-mount']);
});
t.teardown(async () => {
  await keyed?.stop();
  await plain?.stop();
});

/** One line on stderr, `circuit: …`, exit 1. */
/** Refusals a daemon's log lines account for: a full line is one, a summary says how many. */
function refusalsIn(lines: string[]): number {
  let n = 0;
  for (const l of lines) {
    const m = /rejecting connections: (\d+) more/.exec(l);
    if (m) n += Number(m[1]);
    else if (l.includes('rejecting connection: ')) n++;
  }
  return n;
}

function refusedWith(t: Test, r: Result, want: string | RegExp, what: string): void {
  t.equal(r.code, 1, `${what}: exit 1`);
  t.equal(r.stdout, '', `${what}: nothing on stdout`);
  t.equal(r.stderr.split('\n').length, 2, `${what}: one line on stderr (${JSON.stringify(r.stderr)})`);
  if (typeof want === 'string') t.equal(r.stderr, want, what);
  else t.match(r.stderr, want, what);
}

t.test('keygen prints 88 base64 characters and a newline, different each time', async (t) => {
  const seen = new Set<string>();
  for (let i = 0; i < 3; i++) {
    const r = await cli(null, ['keygen']);
    t.equal(r.code, 0, r.stderr);
    t.match(r.stdout, /^[A-Za-z0-9+/]{86}==\n$/, 'standard base64 of 64 bytes');
    t.equal(Buffer.from(r.stdout.trim(), 'base64').length, 64);
    seen.add(r.stdout);
  }
  t.equal(seen.size, 3, 'three different keys');
});

t.test('a client with the same key is served (--hmac and $CIRCUIT_HMAC)', async (t) => {
  const flag = await cli(keyed.url, ['ls', '/', '--hmac', key]);
  t.equal(flag.code, 0, flag.stderr);
  t.equal(flag.stdout, `/${keyed.id}\n`);
  const env = await cli(keyed.url, ['ls', '/'], '', { CIRCUIT_HMAC: key });
  t.equal(env.code, 0, env.stderr);
  t.equal(env.stdout, `/${keyed.id}\n`);
  const other = file('other-for-flag', (await cli(null, ['keygen'])).stdout);
  const wins = await cli(keyed.url, ['ls', '/', '--hmac', key], '', { CIRCUIT_HMAC: other });
  t.equal(wins.stdout, `/${keyed.id}\n`, 'the flag wins over the environment');
});

t.test('clients without the key are refused with one line and exit 1; the daemon logs it and keeps serving', async (t) => {
  const other = file('other', (await cli(null, ['keygen'])).stdout);
  const keyText = fs.readFileSync(key, 'utf8').trim();
  // A truncated key that is still a valid key (44 characters, 33 bytes) is simply another key.
  const truncValid = file('trunc-valid', keyText.slice(0, 44) + '\n');
  const before = keyed.stderr().split('\n').length - 1; // the last piece is the unfinished line
  const cases: Array<[string, string[], NodeJS.ProcessEnv]> = [
    ['no key', [], {}],
    ['a wrong key (--hmac)', ['--hmac', other], {}],
    ['a wrong key ($CIRCUIT_HMAC)', [], { CIRCUIT_HMAC: other }],
    ['a truncated (but well-formed) key', ['--hmac', truncValid], {}],
  ];
  for (const [what, extra, env] of cases) {
    const r = await cli(keyed.url, ['ls', '/', ...extra], '', env);
    refusedWith(t, r, REFUSED, what);
  }
  // the first refusal of a second is logged in full, the others in one summary line a second later
  const text = (await eventually(() => {
    const l = keyed.stderr().split('\n').slice(before);
    return refusalsIn(l) >= cases.length ? l.join('\n') : undefined;
  }, 5000)) as string;
  t.match(text, /handshake from 127\.0\.0\.1:\d+ refused: peer (has no cluster key|does not hold the cluster key)/);
  t.match(text, /does not hold the cluster key/, 'a wrong key is logged as such');
  t.equal(keyed.proc.exitCode, null, 'still running');
  const ok = await cli(keyed.url, ['ls', '/', '--hmac', key]);
  t.equal(ok.stdout, `/${keyed.id}\n`, 'and still serving');
});

t.test('key-file problems are errors with their own messages, never plaintext', async (t) => {
  const keyText = fs.readFileSync(key, 'utf8').trim();
  const cases: Array<[string, string, RegExp]> = [
    ['an empty key file', file('empty', ''), /^circuit: problem decoding base64 private key: the key file is empty\n$/],
    ['a whitespace-only key file', file('blank', ' \n\n'), /^circuit: problem decoding base64 private key: the key file is empty\n$/],
    ['a key file cut mid-quad', file('trunc-odd', keyText.slice(0, 30)), /^circuit: problem decoding base64 private key: illegal base64 data \(length is not a multiple of 4\)\n$/],
    ['a key file cut short', file('trunc-short', keyText.slice(0, 20) + '\n'), /^circuit: problem decoding base64 private key: key is 15 bytes; at least 16 are required \(use circuit keygen\)\n$/],
    ['a key file that is not base64', file('garbage', 'this is not a key!\n'), /^circuit: problem decoding base64 private key: illegal base64 data/],
    ['a missing key file', path.join(dir, 'missing'), /^circuit: problem reading private key file \(.*missing\): ENOENT: no such file or directory/],
    ['a directory', dir, /^circuit: problem reading private key file \(.*\): EISDIR/],
  ];
  for (const [what, f, want] of cases) {
    // against the keyless daemon: a broken key must not fall back to plaintext, which would work
    refusedWith(t, await cli(plain.url, ['ls', '/', '--hmac', f]), want, `${what} (--hmac)`);
    refusedWith(t, await cli(plain.url, ['ls', '/'], '', { CIRCUIT_HMAC: f }), want, `${what} ($CIRCUIT_HMAC)`);
    refusedWith(t, await cli(keyed.url, ['ls', '/', '--hmac', f]), want, `${what} (keyed server)`);
  }
  t.equal(keyed.proc.exitCode, null);
});

t.test('a keyless daemon refuses a keyed client the same way and keeps serving', async (t) => {
  const r = await cli(plain.url, ['ls', '/', '--hmac', key]);
  refusedWith(t, r, REFUSED, 'keyed client, keyless server');
  const env = await cli(plain.url, ['ls', '/'], '', { CIRCUIT_HMAC: key });
  refusedWith(t, env, REFUSED, 'keyed client ($CIRCUIT_HMAC), keyless server');
  t.equal(plain.proc.exitCode, null);
  const ok = await cli(plain.url, ['ls', '/']);
  t.equal(ok.stdout, `/${plain.id}\n`);
});

t.test('the refused side learns nothing: a wrong key gets the preamble and a TLS alert, nothing more', async (t) => {
  const u = new URL(keyed.url.replace('circuit://', 'http://'));
  // a recording proxy in front of the daemon, and a dialer with a wrong key through it
  const fromDaemon: Buffer[] = [];
  const px = net.createServer((a) => {
    const b = net.connect(Number(u.port), '127.0.0.1');
    a.on('error', () => undefined);
    b.on('error', () => undefined);
    a.on('data', (c: Buffer) => b.write(c));
    b.on('data', (c: Buffer) => { fromDaemon.push(c); a.write(c); });
    a.on('close', () => b.destroy());
    b.on('close', () => a.destroy());
  });
  await new Promise<void>((r) => px.listen(0, '127.0.0.1', r));
  t.teardown(() => px.close());
  const sock = net.connect((px.address() as net.AddressInfo).port, '127.0.0.1');
  sock.on('error', () => undefined);
  await new Promise((r) => sock.once('connect', r));
  await t.rejects(handshake(sock, randomBytes(64), 'dialer'), { message: DIAL_REFUSED });
  await eventually(() => sock.destroyed);
  await new Promise((r) => setTimeout(r, 100));
  const all = Buffer.concat(fromDaemon);
  t.same(all.subarray(0, PREAMBLE_BYTES), preamble('listener', 1), 'the listener preamble');
  const rest = all.subarray(PREAMBLE_BYTES);
  t.ok(rest.length === 0 || (rest[0] === 0x15 && rest.length <= 7), `then at most a TLS alert, no ServerHello (${rest.toString('hex')})`);
});

t.test('circuit start refuses a broken key file with a clear message and exit 1', async (t) => {
  const cases: Array<[string, string, RegExp]> = [
    ['empty', file('start-empty', ''), /circuit: problem decoding base64 private key: the key file is empty\n$/],
    ['truncated', file('start-trunc', 'AAAAAAAA\n'), /circuit: problem decoding base64 private key: key is 6 bytes; at least 16 are required/],
    ['missing', path.join(dir, 'nope'), /circuit: problem reading private key file \(.*nope\): ENOENT/],
  ];
  for (const [what, f, want] of cases) {
    for (const how of ['flag', 'env'] as const) {
      const args = ['start', '--no-mount', '--var', path.join(dir, `var-${what}-${how}`), ...(how === 'flag' ? ['--hmac', f] : [])];
      const p = spawnCircuit(args, cleanEnv(how === 'env' ? { CIRCUIT_HMAC: f } : {}), ['ignore', 'pipe', 'pipe']);
      let out = '';
      let err = '';
      p.stdout!.on('data', (c) => (out += c));
      p.stderr!.on('data', (c) => (err += c));
      const code = await new Promise<number | null>((r) => {
        const timer = setTimeout(() => p.kill('SIGKILL'), 15_000);
        p.once('close', (c) => {
          clearTimeout(timer);
          r(c);
        });
      });
      t.equal(code, 1, `${what} key (${how}): exit 1`);
      t.equal(out, '', `${what} key (${how}): no URL printed, nothing served`);
      t.match(err, want, `${what} key (${how}): ${err.trim().split('\n').pop()}`);
      t.notMatch(err, /Using a cluster key/, 'never claims to use a key');
    }
  }
});

t.test('bind defaults: loopback without a key; a warning when bound elsewhere without one', async (t) => {
  t.match(plain.url, /^circuit:\/\/127\.0\.0\.1:\d+\//, 'keyless default bind is loopback');
  t.notMatch(plain.stderr(), /warning: listening/, 'no warning on loopback');
  const wide = await startServer(['--no-mount', '-a', '0.0.0.0:0']);
  t.teardown(() => wide.stop());
  t.match(wide.url, /^circuit:\/\/0\.0\.0\.0:\d+\//);
  t.match(wide.stderr(), /warning: listening on 0\.0\.0\.0:0 without a key \(--hmac\): anyone who can reach it can run commands as this user/);
  t.match(keyed.stderr(), /Using a cluster key: connections are authenticated and encrypted\./);
  t.notMatch(keyed.stderr(), /warning: listening/);
  const keyedDefault = await startServer(['--no-mount', '--hmac', key], { env: { CIRCUIT_HMAC: key } });
  t.teardown(() => keyedDefault.stop());
  t.match(keyedDefault.url, /^circuit:\/\/0\.0\.0\.0:\d+\//, 'with a key the default bind is every interface (documented in --help)');
  t.notMatch(keyedDefault.stderr(), /warning: listening/, 'and there is no warning');
});

t.test('a keyless daemon logs the keyed client it refused', async (t) => {
  const r = await cli(plain.url, ['ls', '/', '--hmac', key]);
  t.equal(r.code, 1);
  await eventually(() => /127\.0\.0\.1:\d+/.test(plain.stderr().split('\n').slice(3).join('\n')), 2000);
  t.pass('the refusal is on the daemon\'s stderr with the peer');
});

t.test('keygen -o creates the key file 0600, never overwrites, -f replaces', async (t) => {
  const f = path.join(dir, 'made.key');
  const r = await cli(null, ['keygen', '-o', f]);
  t.equal(r.code, 0, r.stderr);
  t.equal(r.stdout, '', 'nothing on stdout');
  t.equal((fs.statSync(f).mode & 0o777).toString(8), '600', 'mode 0600');
  const first = fs.readFileSync(f, 'utf8');
  t.match(first, /^[A-Za-z0-9+/]{86}==\n$/);
  const again = await cli(null, ['keygen', '-o', f]);
  t.equal(again.code, 1);
  t.equal(again.stderr, `circuit: key file ${f} exists; not overwriting it (use -f to replace it)\n`);
  t.equal(fs.readFileSync(f, 'utf8'), first, 'the key is unchanged');
  fs.chmodSync(f, 0o644);
  const forced = await cli(null, ['keygen', '-o', f, '-f']);
  t.equal(forced.code, 0, forced.stderr);
  t.not(fs.readFileSync(f, 'utf8'), first, '-f replaced the key');
  t.equal((fs.statSync(f).mode & 0o777).toString(8), '600', 'and the new file is 0600 whatever the old was');
  const link = path.join(dir, 'link.key');
  fs.symlinkSync(path.join(dir, 'link-target'), link);
  const viaLink = await cli(null, ['keygen', '-o', link]);
  t.equal(viaLink.code, 1, 'a symbolic link is not followed');
  t.notOk(fs.existsSync(path.join(dir, 'link-target')), 'nothing was created through it');
});

t.test('a key file others may read is refused by start and by the CLI', async (t) => {
  const f = file('open.key', fs.readFileSync(key, 'utf8'));
  fs.chmodSync(f, 0o644);
  const want = `circuit: key file ${f} is readable by others (mode 0644); chmod 600 ${f}\n`;
  const start = await cli(null, ['start', '--no-mount', '--var', path.join(dir, 'var-open'), '--hmac', f]);
  t.equal(start.code, 1);
  t.ok(start.stderr.endsWith('\n' + want), `start: ${start.stderr.trim().split('\n').pop()}`);
  t.equal(start.stdout, '', 'nothing served');
  const client = await cli(keyed.url, ['ls', '/', '--hmac', f]);
  t.equal(client.code, 1);
  t.equal(client.stderr, want, 'the CLI refuses it too');
  const viaEnv = await cli(keyed.url, ['ls', '/'], '', { CIRCUIT_HMAC: f });
  t.equal(viaEnv.stderr, want, 'through $CIRCUIT_HMAC as well');
  fs.chmodSync(f, 0o640);
  t.equal((await cli(keyed.url, ['ls', '/', '--hmac', f])).stderr, want.replace('0644', '0640'), 'group-readable is refused');
  fs.chmodSync(f, 0o620);
  t.match((await cli(keyed.url, ['ls', '/', '--hmac', f])).stderr, /is writable by others \(mode 0620\); chmod 600/, 'so is group-writable');
  fs.chmodSync(f, 0o400);
  t.equal((await cli(keyed.url, ['ls', '/', '--hmac', f])).stdout, `/${keyed.id}\n`, '0400 is fine');
});
