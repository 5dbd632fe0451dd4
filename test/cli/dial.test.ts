import t from 'tap';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { startServer, cli, NOBODY, type Running } from '../helpers/daemon';

/** Choosing the server, flags and the CLI's general behaviour (docs/cli.md). */
let d: Running;
let dir: string;

t.before(async () => {
  d = await startServer();
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'circuit-dial-'));
});
t.teardown(async () => {
  await d.stop();
  fs.rmSync(dir, { recursive: true, force: true });
});

const GONE = 'circuit://127.0.0.1:1/1/Q0000000000000000';

t.test('dial: $CIRCUIT names a file holding the URL (whitespace trimmed)', async (t) => {
  const f = path.join(dir, 'url');
  fs.writeFileSync(f, `  ${d.url}\n\n`);
  const r = await cli(null, ['ls', '/'], '', { CIRCUIT: f });
  t.equal(r.code, 0, r.stderr);
  t.equal(r.stdout, `/${d.id}\n`);
});

t.test('dial: -d wins over $CIRCUIT', async (t) => {
  const bad = path.join(dir, 'bad');
  fs.writeFileSync(bad, GONE + '\n');
  const r = await cli(d.url, ['ls', '/'], '', { CIRCUIT: bad });
  t.equal(r.code, 0, r.stderr);
  t.equal(r.stdout, `/${d.id}\n`);
  const good = path.join(dir, 'good');
  fs.writeFileSync(good, d.url);
  const w = await cli(GONE, ['ls', '/'], '', { CIRCUIT: good });
  t.equal(w.code, 1, 'the -d URL was used, not the file');
  t.equal(w.stderr, 'circuit: addressed server is gone or authentication failed\n');
});

t.test('dial: an unreadable $CIRCUIT file', async (t) => {
  const f = path.join(dir, 'missing');
  const r = await cli(null, ['ls', '/'], '', { CIRCUIT: f });
  t.equal(r.code, 1);
  t.match(r.stderr, new RegExp(`^circuit: circuit environment file ${f} is not readable: .+\\n$`));
});

t.test('dial: a bad or stale URL: addressed server is gone or authentication failed', async (t) => {
  const wrongWorker = d.url.replace(/Q[0-9a-f]{16}$/, 'Q0000000000000001');
  const wrongPid = d.url.replace(/\/(\d+)\/Q/, '/1/Q');
  for (const url of [GONE, wrongWorker, wrongPid]) {
    const r = await cli(url, ['peek', `/${d.id}`]);
    t.equal(r.code, 1, url);
    t.equal(r.stderr, 'circuit: addressed server is gone or authentication failed\n', url);
    t.equal(r.stdout, '');
  }
});

t.test('dial: a malformed URL fails with one line, exit 1', async (t) => {
  for (const url of ['not-a-url', 'http://127.0.0.1:1/1/Q0000000000000000', `${d.url}/`]) {
    const r = await cli(url, ['ls', '/']);
    t.equal(r.code, 1, url);
    t.match(r.stderr, /^circuit: [^\n]+\n$/, url);
  }
});

t.test('dial: no dial information and no server socket at all', async (t) => {
  // An empty socket directory: $XDG_RUNTIME_DIR/circuit for a user other than root, so as root
  // the CLI runs as nobody (root's directory, /run/circuit, is shared with other daemons).
  const xdg = fs.mkdtempSync(path.join(os.tmpdir(), 'circuit-xdg-'));
  fs.chmodSync(xdg, 0o755);
  t.teardown(() => fs.rmSync(xdg, { recursive: true, force: true }));
  const r = await cli(null, ['ls', '/'], '', { XDG_RUNTIME_DIR: xdg }, process.getuid?.() === 0 ? NOBODY : undefined);
  t.equal(r.code, 1);
  t.equal(r.stderr, `circuit: no dial or discovery addresses available, and no server's control socket in ${xdg}/circuit; use -dial, -discover or --socket, or start a server\n`);
});

t.test('dial: a stale URL runs nothing on the server that answers at its address', async (t) => {
  // The CLI sends its call right behind the hello; the server refuses what follows a refused hello.
  const wrongWorker = d.url.replace(/Q[0-9a-f]{16}$/, 'Q0000000000000001');
  const wrongPid = d.url.replace(/\/(\d+)\/Q/, '/1/Q');
  for (const [i, url] of [wrongWorker, wrongPid].entries()) {
    const r = await cli(url, ['mkchan', `/${d.id}/stale${i}`, '1']);
    t.equal(r.code, 1, url);
    t.equal(r.stderr, 'circuit: addressed server is gone or authentication failed\n', url);
    const peek = await cli(d.url, ['peek', `/${d.id}/stale${i}`]);
    t.equal(peek.stdout, 'null\n', `no channel was made through ${url}`);
  }
  const ok = await cli(d.url, ['mkchan', `/${d.id}/stale`, '1']);
  t.equal(ok.code, 0, `the same command with the right URL makes it: ${ok.stderr}`);
  t.match((await cli(d.url, ['peek', `/${d.id}/stale`])).stdout, /"Cap": 1/);
  await cli(d.url, ['scrub', `/${d.id}/stale`]);
});

t.test('dial: the dial error comes before the argument-count error', async (t) => {
  const r = await cli(GONE, ['peek']);
  t.equal(r.stderr, 'circuit: addressed server is gone or authentication failed\n');
  const stale = await cli(d.url.replace(/Q[0-9a-f]{16}$/, 'Q0000000000000001'), ['peek']);
  t.equal(stale.stderr, 'circuit: addressed server is gone or authentication failed\n', 'a refused hello too');
  const ok = await cli(d.url, ['peek']);
  t.equal(ok.stderr, 'circuit: peek needs one anchor argument\n');
});

t.test('dial: flag spellings: -d, --dial, --dial=, -dial (single-dash long), after or before the arguments', async (t) => {
  const forms: string[][] = [
    ['ls', '/', '-d', d.url],
    ['ls', '-d', d.url, '/'],
    ['ls', '/', '--dial', d.url],
    ['ls', '/', `--dial=${d.url}`],
    ['ls', '/', '-dial', d.url],
    ['ls', '-dial', d.url, '/'],
    ['ls', '/', `-dial=${d.url}`],
  ];
  for (const args of forms) {
    const r = await cli(null, args);
    t.equal(r.code, 0, `${args.join(' ')}: ${r.stderr}`);
    t.equal(r.stdout, `/${d.id}\n`, args.join(' '));
  }
  const l = await cli(null, ['ls', '-long', `/${d.id}`, '-dial', d.url]);
  t.equal(l.code, 0, '-long is accepted too');
});

t.test('cli: an unknown command exits 3', async (t) => {
  const r = await cli(null, ['frobnicate']);
  t.equal(r.code, 3);
  t.equal(r.stderr, "circuit: No help topic for 'frobnicate'\n");
  t.equal(r.stdout, '');
});

t.test('cli: an unknown flag exits 1 with one error line', async (t) => {
  const r = await cli(d.url, ['ls', '--zz', '/']);
  t.equal(r.code, 1);
  t.match(r.stderr, /zz/);
});

t.test('cli: help and version exit 0', async (t) => {
  const h = await cli(null, ['help']);
  t.equal(h.code, 0);
  t.match(h.stdout + h.stderr, /mkchan/);
  const v = await cli(null, ['--version']);
  t.equal(v.code, 0);
  t.match(v.stdout, /^\d+\.\d+\.\d+\n$/);
});

t.test('cli: errors never print a stack trace', async (t) => {
  const cases = [
    ['mkchan', `/${d.id}`, '1'],
    ['recv', '/X0000000000000000/x'],
    ['close', '/X0000000000000000/x'],
    ['signal', 'TERM', `/${d.id}/none`],
    ['wait', `/${d.id}/none`],
    ['stdout', `/${d.id}/none`],
    ['stdin', `/${d.id}/none`],
  ];
  for (const args of cases) {
    const r = await cli(d.url, args);
    t.equal(r.code, 1, args.join(' '));
    t.match(r.stderr, /^circuit: [^\n]+\n$/, args.join(' '));
    t.notMatch(r.stderr, /\n\s+at /, 'no stack trace');
  }
});

t.test('dial: a wrong or missing key gives addressed server is gone or authentication failed', async (t) => {
  const key = path.join(dir, 'key');
  const other = path.join(dir, 'other');
  const k = await cli(null, ['keygen']);
  t.equal(k.code, 0, k.stderr);
  fs.writeFileSync(key, k.stdout, { mode: 0o600 });
  fs.writeFileSync(other, (await cli(null, ['keygen'])).stdout, { mode: 0o600 });
  const keyed = await startServer(['--no-mount'], { env: { CIRCUIT_HMAC: key } });
  t.teardown(() => keyed.stop());
  const ok = await cli(keyed.url, ['ls', '/'], '', { CIRCUIT_HMAC: key });
  t.equal(ok.stdout, `/${keyed.id}\n`, 'the right key through $CIRCUIT_HMAC');
  const flag = await cli(keyed.url, ['ls', '/', '--hmac', key]);
  t.equal(flag.stdout, `/${keyed.id}\n`, 'the right key through --hmac');
  for (const [what, extra, env] of [['no key', [], {}], ['a wrong key', ['--hmac', other], {}]] as const) {
    const r = await cli(keyed.url, ['ls', '/', ...extra], '', env);
    t.equal(r.code, 1, what);
    t.equal(r.stderr, 'circuit: addressed server is gone or authentication failed\n', what);
  }
  const plain = await cli(d.url, ['ls', '/', '--hmac', key]);
  t.equal(plain.code, 1, 'a key against a keyless server');
  t.equal(plain.stderr, 'circuit: addressed server is gone or authentication failed\n');
  t.equal(keyed.proc.exitCode, null, 'the keyed daemon survived the bad handshakes');
});
