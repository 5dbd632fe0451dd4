import t from 'tap';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { startServer, cli, spawnCircuit, cleanEnv, haveSetpriv, NOBODY } from '../helpers/daemon';

/**
 * Issue 10, the local user: `circuit start` with no flag opens no TCP port, only its owner-only
 * control socket, which the owner's CLI finds with no flag; another uid (nobody, through setpriv)
 * reaches no port and no socket of it. Also: several servers, stale and live sockets, --group.
 * The default socket directory of root is /run/circuit, shared with any other daemon of root on
 * this machine; test daemons elsewhere put their socket in their var folder (helpers/daemon.ts).
 */
const isRoot = process.getuid?.() === 0;
const skip = !isRoot ? 'needs root (the default socket of root, and setpriv to another uid)' : !haveSetpriv ? 'no setpriv' : false;
const base = fs.mkdtempSync(path.join(os.tmpdir(), 'circuit-sec-local-'));
fs.chmodSync(base, 0o711); // other uids may pass through to what a test opens to them
t.teardown(() => fs.rmSync(base, { recursive: true, force: true }));

/** The inodes of the sockets a process holds open. */
function socketInodes(pid: number): Set<string> {
  const inodes = new Set<string>();
  for (const fd of fs.readdirSync(`/proc/${pid}/fd`)) {
    try {
      const m = /^socket:\[(\d+)\]$/.exec(fs.readlinkSync(`/proc/${pid}/fd/${fd}`));
      if (m) inodes.add(m[1]);
    } catch {
      /* closed meanwhile */
    }
  }
  return inodes;
}

/** The process's TCP listeners and UDP sockets, as `proto local-address` (from /proc/net). */
function inetSockets(pid: number): string[] {
  const mine = socketInodes(pid);
  const found: string[] = [];
  for (const proto of ['tcp', 'tcp6', 'udp', 'udp6']) {
    const rows = fs.readFileSync(`/proc/${pid}/net/${proto}`, 'utf8').trim().split('\n').slice(1);
    for (const row of rows) {
      const f = row.trim().split(/\s+/);
      // tcp: only listeners (state 0A); udp: every socket is a door
      if (mine.has(f[9]) && (proto.startsWith('udp') || f[3] === '0A')) found.push(`${proto} ${f[1]}`);
    }
  }
  return found;
}

/** The Unix sockets listening on a path in this network namespace: [inode, path] (from /proc/net/unix). */
function listeningUnix(): [string, string][] {
  const rows = fs.readFileSync('/proc/net/unix', 'utf8').trim().split('\n').slice(1);
  return rows.map((r) => r.trim().split(/\s+/)).filter((f) => f[3] === '00010000' && f[7]).map((f) => [f[6]!, f[7]!]);
}

/** The Unix sockets the process listens on, by path. */
function unixListeners(pid: number): string[] {
  const mine = socketInodes(pid);
  return listeningUnix().filter(([inode]) => mine.has(inode)).map(([, p]) => p);
}

const mode = (p: string) => (fs.statSync(p).mode & 0o777).toString(8);

/** The sockets that servers listen on in /run/circuit now (stale files left by killed ones are not listed). */
function runCircuitListeners(): string[] {
  return listeningUnix().map(([, p]) => p).filter((p) => p.startsWith('/run/circuit/'));
}

t.test('start with no flag: no TCP or UDP port, an owner-only socket that the CLI finds', { skip }, async (t) => {
  const d = await startServer(['--no-mount'], { tcp: false, socket: false });
  t.teardown(() => d.stop());
  t.match(d.url, /^\/run\/circuit\/X[0-9a-f]{16}\.sock$/, 'start prints the socket path when it has no TCP port');
  t.equal(d.socket, d.url);
  t.match(d.stderr(), /no TCP port/);
  t.same(inetSockets(d.proc.pid!), [], 'the daemon has no TCP listener and no UDP socket');
  t.same(unixListeners(d.proc.pid!), [d.socket], 'and listens on its control socket only');
  t.equal(mode(d.socket), '600', 'the socket is 0600');
  t.equal(mode('/run/circuit'), '700', 'in a 0700 directory');

  // A server of root that runs outside the tests (`npm start` in another shell) shares
  // /run/circuit: the CLI then rightly asks which one is meant, so this check needs ours alone.
  const others = runCircuitListeners().filter((s) => s !== d.socket);
  const alone = others.length > 0 && `another server of root listens in /run/circuit (${others.map((s) => path.basename(s)).join(', ')}); the no-flag check needs this one alone`;
  const ls = await cli(null, ['ls', '/']);
  t.equal(ls.code, 0, ls.stderr, { skip: alone });
  t.equal(ls.stdout, `/${d.id}\n`, "root's circuit ls / works with no flag", { skip: alone });

  // nobody: through the socket (found, named, or as -d) and through no port at all
  const cmd = JSON.stringify({ Path: 'id' });
  for (const args of [['--socket', d.socket], ['-d', d.socket], []]) {
    const r = await cli(null, ['mkproc', ...args, `/${d.id}/by-nobody`], cmd, {}, NOBODY);
    t.equal(r.code, 1, `nobody cannot start a process (${args.join(' ') || 'no flag'})`);
    t.match(r.stderr, /^circuit: [^\n]+\n$/, r.stderr.trim());
  }
  const viaEnv = await cli(null, ['mkproc', `/${d.id}/by-nobody`], cmd, { CIRCUIT_SOCKET: d.socket }, NOBODY);
  t.match(viaEnv.stderr, /permission denied/, '$CIRCUIT_SOCKET: permission denied');
  const probe = execFileSync('setpriv', ['--reuid', '65534', '--regid', '65534', '--clear-groups', process.execPath, '-e',
    `require('net').connect(${JSON.stringify(d.socket)}).on('error', (e) => console.log(e.code)).on('connect', () => { console.log('connected'); process.exit(0); })`], { encoding: 'utf8', cwd: '/' });
  t.equal(probe.trim(), 'EACCES', 'a raw connect by nobody fails EACCES');
  t.equal((await cli(null, ['peek', '--socket', d.socket, `/${d.id}/by-nobody`])).stdout.trim(), 'null', 'nothing was made');

  const join = await cli(null, ['join', '--socket', d.socket, `/${d.id}`, '127.0.0.1:1']);
  t.equal(join.stderr, 'circuit: join error: this server has no network port, so it cannot join a cluster (start it with -a, --if, -j or --discover)\n', 'a server without a port cannot join');

  t.equal(await d.stop(), 0);
  t.notOk(fs.existsSync(d.socket), 'a clean stop removes the socket');
});

t.test('several servers: name one, or get the list', { skip }, async (t) => {
  const a = await startServer(['--no-mount'], { tcp: false, socket: false });
  t.teardown(() => a.stop());
  const b = await startServer(['--no-mount'], { tcp: false, socket: false });
  t.teardown(() => b.stop());
  const r = await cli(null, ['ls', '/']);
  t.equal(r.code, 1);
  t.match(r.stderr, /^circuit: \d+ servers listen in \/run\/circuit \(.+\); choose one with --socket PATH or \$CIRCUIT_SOCKET\n$/);
  t.ok(r.stderr.includes(path.basename(a.socket)) && r.stderr.includes(path.basename(b.socket)), 'the list names both');
  t.equal((await cli(null, ['ls', '/', '--socket', b.socket])).stdout, `/${b.id}\n`, '--socket names one');
  t.equal((await cli(null, ['ls', '/'], '', { CIRCUIT_SOCKET: a.socket })).stdout, `/${a.id}\n`, '$CIRCUIT_SOCKET names one');
  const f = path.join(base, 'circuit-env');
  fs.writeFileSync(f, b.socket + '\n');
  t.equal((await cli(null, ['ls', '/'], '', { CIRCUIT: f })).stdout, `/${b.id}\n`, '$CIRCUIT may hold what start printed: a socket path');
});

t.test('a stale socket is replaced at start, a live one refused', async (t) => {
  const sock = path.join(base, 'fixed.sock');
  const a = await startServer(['--no-mount', '--socket', sock]);
  t.equal(a.socket, sock);
  const second = await new Promise<{ code: number | null; err: string }>((resolve) => {
    const p = spawnCircuit(['start', '--no-mount', '--var', path.join(base, 'var2'), '--socket', sock], cleanEnv(), ['ignore', 'pipe', 'pipe']);
    let err = '';
    p.stderr!.on('data', (c) => (err += c));
    p.on('close', (code) => resolve({ code, err }));
  });
  t.equal(second.code, 1, 'a second server on a live socket fails');
  t.match(second.err, new RegExp(`^circuit: cannot listen on "${sock}": another server is listening there \\(stop it, or choose another --socket\\)$`, 'm'));
  t.equal((await cli(null, ['ls', '/', '--socket', sock])).stdout, `/${a.id}\n`, 'and the first still answers there');
  await a.stop('SIGKILL');
  t.ok(fs.existsSync(sock), 'a killed server leaves its socket behind');
  const stale = await cli(null, ['ls', '/', '--socket', sock]);
  t.match(stale.stderr, /nobody listens there \(a stale socket\)/);
  const b = await startServer(['--no-mount', '--socket', sock]);
  t.teardown(() => b.stop());
  t.equal((await cli(null, ['ls', '/', '--socket', sock])).stdout, `/${b.id}\n`, 'a new server replaces the stale socket');
  fs.writeFileSync(path.join(base, 'plain'), 'x');
  const notSock = await cli(null, ['start', '--no-mount', '--var', path.join(base, 'var3'), '--socket', path.join(base, 'plain')]);
  t.equal(notSock.code, 1);
  t.match(notSock.stderr, /it exists and is not a socket/, 'a file that is not a socket is left alone');
});

t.test('--group widens the socket to one group', { skip }, async (t) => {
  const dir = path.join(base, 'shared');
  fs.mkdirSync(dir, { mode: 0o711 });
  fs.chmodSync(dir, 0o711);
  const sock = path.join(dir, 'grp.sock');
  const d = await startServer(['--no-mount', '--socket', sock, '--group', 'nogroup'], { tcp: false });
  t.teardown(() => d.stop());
  const st = fs.statSync(sock);
  t.equal(mode(sock), '660');
  t.equal(st.gid, NOBODY.gid, 'group nogroup');
  const member = await cli(null, ['ls', '/', '--socket', sock], '', {}, NOBODY);
  t.equal(member.stdout, `/${d.id}\n`, `a member of the group is served: ${member.stderr}`);
  const other = await cli(null, ['ls', '/', '--socket', sock], '', {}, { uid: NOBODY.uid, gid: 1 });
  t.equal(other.code, 1);
  t.match(other.stderr, /permission denied/, 'a user outside the group is not');
  const bad = await cli(null, ['start', '--no-mount', '--var', path.join(base, 'var4'), '--socket', path.join(base, 'g2.sock'), '--group', 'no-such-group-here']);
  t.match(bad.stderr, /\ncircuit: unknown group "no-such-group-here"\n$/);
});

t.test('a socket directory someone else made is refused', { skip }, async (t) => {
  const xdg = path.join(base, 'xdg');
  fs.mkdirSync(path.join(xdg, 'circuit'), { recursive: true, mode: 0o777 });
  fs.chmodSync(xdg, 0o777);
  fs.chmodSync(path.join(xdg, 'circuit'), 0o777);
  fs.mkdirSync(path.join(base, 'var5'), { mode: 0o777 });
  fs.chmodSync(path.join(base, 'var5'), 0o777);
  const r = await cli(null, ['start', '--no-mount', '--var', path.join(base, 'var5')], '', { XDG_RUNTIME_DIR: xdg }, NOBODY);
  t.equal(r.code, 1);
  t.ok(r.stderr.endsWith(`\ncircuit: socket directory "${xdg}/circuit" is not private (owner uid 0, mode 0777); remove it or choose --socket PATH\n`), r.stderr);
});
