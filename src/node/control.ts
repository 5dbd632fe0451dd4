import fs = require('node:fs');
import net = require('node:net');
import os = require('node:os');
import path = require('node:path');
import { Session, type SessionConfig } from '../cluster/session';
import { AppError, SystemError } from '../kit/errors';

/**
 * The local control socket: a Unix-domain socket that only the server's owner can open (mode
 * 0600 in a directory only the owner can write), through which the local CLI and `circuit mount`
 * reach the server with no URL, no key and no TCP port. Access is the file system's: the kernel
 * refuses everyone else before a byte is read. `--group NAME` widens the socket to a group
 * (0660, and the directory searchable by the group), as Docker's socket is widened.
 *
 * Default place: /run/circuit/ for root, $XDG_RUNTIME_DIR/circuit/ otherwise, and without
 * $XDG_RUNTIME_DIR $TMPDIR/circuit-UID/ (checked to be ours and private, since anyone may create
 * names in /tmp). One socket per server, named after the server (`X….sock`), so several servers
 * of one user share the directory and a client can list them.
 */

/** The directory of the default sockets for this user. */
export function defaultSocketDir(env: NodeJS.ProcessEnv = process.env, uid = process.getuid?.() ?? 0): string {
  if (uid === 0) return '/run/circuit';
  if (env.XDG_RUNTIME_DIR) return path.join(env.XDG_RUNTIME_DIR, 'circuit');
  return path.join(os.tmpdir(), `circuit-${uid}`);
}

/** A server's socket in the default directory. */
export function defaultSocketPath(serverId: string, env: NodeJS.ProcessEnv = process.env): string {
  return path.join(defaultSocketDir(env), `${serverId}.sock`);
}

/** True for an argument that names a socket file rather than a circuit URL: `/…`, `./…`, `../…`. */
export function isSocketPath(s: string): boolean {
  return /^\.{0,2}\//.test(s);
}

/** The gid of a group given by name or number (through NSS, as `getent` sees it). */
export function groupId(name: string): number {
  if (/^\d+$/.test(name)) return Number(name);
  try {
    // Loaded here: every CLI command loads this module to find a socket, and node:child_process
    // (with dgram and the rest it brings) is a millisecond of a command's start-up (#7).
    // eslint-disable-next-line @typescript-eslint/no-var-requires
    const { execFileSync } = require('node:child_process') as typeof import('node:child_process');
    const line = execFileSync('getent', ['group', name], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
    const gid = Number(line.split(':')[2]);
    if (Number.isInteger(gid)) return gid;
  } catch {
    /* below */
  }
  throw new AppError('EINVAL', `unknown group ${JSON.stringify(name)}`);
}

/**
 * Makes (or checks) the socket's directory: owned by us, writable by nobody else, not a symbolic
 * link. An existing directory that fails this is refused, not repaired: someone else made it.
 */
function privateDir(dir: string, gid: number | undefined): void {
  fs.mkdirSync(path.dirname(dir), { recursive: true, mode: 0o755 });
  try {
    fs.mkdirSync(dir, { mode: 0o700 });
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EEXIST') {
      throw new SystemError('EIO', `cannot make the socket directory ${JSON.stringify(dir)}: ${(e as Error).message}`, { cause: e });
    }
  }
  const st = fs.lstatSync(dir);
  const uid = process.getuid?.() ?? 0;
  if (!st.isDirectory() || st.uid !== uid || (st.mode & 0o022) !== 0) {
    const what = st.isDirectory() ? `owner uid ${st.uid}, mode ${octal(st.mode)}` : 'not a directory';
    throw new AppError('EACCES', `socket directory ${JSON.stringify(dir)} is not private (${what}); remove it or choose --socket PATH`);
  }
  if (gid !== undefined) {
    // the group may search the directory (to reach its socket), not list or change it
    fs.chownSync(dir, uid, gid);
    fs.chmodSync(dir, 0o710);
  }
}

function octal(mode: number): string {
  return '0' + (mode & 0o777).toString(8);
}

/** Whether something accepts connections on the socket at p (false: refused, missing, not a socket). */
export function socketAnswers(p: string, timeoutMs = 1000): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect({ path: p });
    const done = (ok: boolean) => {
      clearTimeout(timer);
      s.destroy();
      resolve(ok);
    };
    const timer = setTimeout(() => done(true), timeoutMs); // a busy listener is still a listener
    s.once('connect', () => done(true));
    s.once('error', () => done(false));
  });
}

/**
 * Removes the sockets in dir that nobody listens on (left by servers that were killed), so that
 * clients choosing among the sockets see live servers only. Only our own sockets are touched.
 */
async function sweep(dir: string): Promise<void> {
  const uid = process.getuid?.() ?? 0;
  for (const name of fs.readdirSync(dir)) {
    if (!name.endsWith('.sock')) continue;
    const p = path.join(dir, name);
    try {
      const st = fs.lstatSync(p);
      if (st.isSocket() && st.uid === uid && !(await socketAnswers(p))) fs.rmSync(p, { force: true });
    } catch {
      /* gone meanwhile */
    }
  }
}

export interface ControlOptions {
  /** The socket's path; default: defaultSocketPath(serverId). */
  path?: string;
  /** Widen the socket to this group (name or gid). */
  group?: string;
  serverId: string;
  /** For each connection's session (the same limits as TCP connections). */
  config?: Partial<SessionConfig>;
  onSession(s: Session): void;
}

export interface ControlSocket {
  path: string;
  /** Stops listening and removes the socket file. */
  close(): Promise<void>;
}

/**
 * Listens on the control socket. A socket left by a dead server at the same path is replaced;
 * a live one (another server listening) is refused, as is a path that is not a socket.
 */
export async function listenControl(opts: ControlOptions): Promise<ControlSocket> {
  const explicit = opts.path !== undefined;
  const p = path.resolve(opts.path ?? defaultSocketPath(opts.serverId));
  const gid = opts.group !== undefined ? groupId(opts.group) : undefined;
  const dir = path.dirname(p);
  if (!explicit) {
    privateDir(dir, gid);
    await sweep(dir);
  } else {
    fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  }
  let st: fs.Stats | undefined;
  try {
    st = fs.lstatSync(p);
  } catch {
    /* free */
  }
  if (st) {
    if (!st.isSocket()) throw new AppError('EEXIST', `cannot listen on ${JSON.stringify(p)}: it exists and is not a socket`);
    if (await socketAnswers(p)) throw new AppError('EBUSY', `cannot listen on ${JSON.stringify(p)}: another server is listening there (stop it, or choose another --socket)`);
    fs.rmSync(p, { force: true });
  }

  const sockets = new Set<net.Socket>();
  const server = net.createServer((sock) => {
    sockets.add(sock);
    sock.on('close', () => sockets.delete(sock));
    sock.on('error', () => {});
    opts.onSession(new Session(sock, { config: opts.config }));
  });
  // The socket is created with the mode the umask leaves; a umask of 0177 makes it 0600 from
  // the start (no moment in which it is wider), and chmod below says so explicitly.
  const umask = process.umask(0o177);
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', (e) => reject(new SystemError('EIO', `cannot listen on ${JSON.stringify(p)}: ${e.message}`, { cause: e })));
      server.listen(p, () => resolve());
    });
  } finally {
    process.umask(umask);
  }
  if (gid !== undefined) {
    fs.chownSync(p, process.getuid?.() ?? 0, gid);
    fs.chmodSync(p, 0o660);
  } else {
    fs.chmodSync(p, 0o600);
  }
  let closing: Promise<void> | undefined;
  return {
    path: p,
    close() {
      closing ??= new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve()); // removes the socket file
      });
      return closing;
    },
  };
}

/**
 * The socket a client uses when told nothing else: the only live one in the default directory.
 * None, or several, is an error that says what was looked at and found.
 */
export async function findSocket(env: NodeJS.ProcessEnv = process.env): Promise<string> {
  const dir = defaultSocketDir(env);
  let names: string[] = [];
  try {
    names = fs.readdirSync(dir).filter((n) => n.endsWith('.sock')).sort();
  } catch {
    /* no directory: no server */
  }
  const live: string[] = [];
  for (const n of names) if (await socketAnswers(path.join(dir, n))) live.push(n);
  if (live.length === 1) return path.join(dir, live[0]);
  if (live.length === 0) {
    throw new AppError('EINVAL', `no dial or discovery addresses available, and no server's control socket in ${dir}; use -dial, -discover or --socket, or start a server`);
  }
  throw new AppError('EINVAL', `${live.length} servers listen in ${dir} (${live.join(', ')}); choose one with --socket PATH or $CIRCUIT_SOCKET`);
}
