import { startDaemon } from '../node/daemon';
import { LocalClient } from '../client/local';
import { VERSION } from '../kit/version';
import type { Server } from '../node/server';
import path = require('node:path');
import { packageRoot } from '../kit/root';
import { AppError, CircuitError } from '../kit/errors';
import { groupId } from '../node/control';
import { oneLine } from '../node/oplog';
import { keyedHandshake } from '../cluster/tcp';
import { resolveKey } from '../cluster/keys';
import { hostPort, interfaceAddress, parseHostPort } from '../cluster/url';

/**
 * `circuit start`: one daemon, one server and (unless --no-mount) the FUSE view of the cluster.
 * Every server listens on its owner-only control socket (src/node/control.ts); it opens a TCP
 * port only when asked for the network (-a, --if, -j, --discover or a key). Its URL, or without
 * a TCP port its socket's path, is printed on stdout, as the only line, once the server serves
 * and the mount answers.
 * SIGTERM, SIGINT and a `stop` request unmount (failing blocked callers), stop the processes
 * (SIGTERM, then SIGKILL after the grace period) and exit 0.
 */
export interface StartFlags {
  addr?: string;
  socket?: string;
  group?: string;
  var?: string;
  mount?: string | false;
  allowOther?: boolean;
  allowUid?: string;
  allowGroup?: string;
  /** -j, repeatable: circuit URLs, HOST:PORT or NAME:PORT. */
  join?: string[];
  joinTimeout?: string;
  discover?: string;
  hmac?: string;
  docker?: boolean;
  if?: string;
  grace?: string;
  allowUnsafeMount?: boolean;
  idleClose?: string;
}

/** Hooks that later layers (mesh, docker, security) install to extend start. */
export const startHooks: Array<(server: Server, flags: StartFlags) => Promise<(() => Promise<void>) | void>> = [];

export async function start(flags: StartFlags): Promise<void> {
  const say = (l: string) => process.stderr.write(oneLine(l) + '\n');
  say(`circuit ${VERSION}`);
  const key = resolveKey(flags.hmac);
  const allowed = allowList(flags);
  if (key) say('Using a cluster key: connections are authenticated and encrypted.');
  const discover = flags.discover || process.env.CIRCUIT_DISCOVER;
  const network = Boolean(flags.addr || flags.if || flags.join?.length || discover || key);
  const addr = !network ? null : flags.if ? ifaceAddr(flags.if, flags.addr) : flags.addr ?? (key ? '0.0.0.0:0' : '127.0.0.1:0');
  if (addr && !key && !isLoopback(addr)) say(`warning: listening on ${addr} without a key (--hmac): anyone who can reach it can run commands as this user`);
  const daemon = await startDaemon({
    addr,
    control: { path: flags.socket, group: flags.group },
    handshake: keyedHandshake(key),
    varDir: flags.var,
    graceMs: flags.grace ? Number(flags.grace) : undefined,
    // a `stop` request (circuit stop, server/ctl) stops this daemon as a signal would
    onStop: () => void stop('stop request'),
  });
  const { server } = daemon;
  const cleanups: Array<() => Promise<void>> = [];
  let unmount: (() => Promise<void>) | undefined;
  let stopping = false;
  const stop = async (why: string) => {
    if (stopping) return;
    stopping = true;
    say(`${why}: stopping`);
    const hard = setTimeout(() => process.exit(0), server.graceMs + 5000);
    try {
      if (unmount) await unmount();
      for (const c of cleanups.reverse()) await c().catch((e) => say(`shutdown: ${(e as Error).message}`));
      await daemon.close();
    } finally {
      clearTimeout(hard);
      process.exit(0);
    }
  };
  // Last line of defence: a daemon never dies of one failed operation. Every failure should be
  // answered where it happens; anything that escapes is logged loudly instead of killing every
  // element and mount with it.
  process.on('unhandledRejection', (e) => server.oplog.say(`internal error (unhandled rejection): ${(e as Error)?.stack ?? e}`));
  process.on('uncaughtException', (e) => server.oplog.say(`internal error (uncaught exception): ${e.stack ?? e}`));
  process.on('SIGTERM', () => void stop('SIGTERM'));
  process.on('SIGINT', () => void stop('SIGINT'));
  process.on('SIGHUP', () => void stop('SIGHUP'));

  try {
    if (flags.docker) cleanups.push(await server.enable('docker'));
    for (const hook of startHooks) {
      const c = await hook(server, flags);
      if (c) cleanups.push(c);
    }
    if (flags.mount !== false) {
      const dir = flags.mount ?? '/circuit';
      const { mount } = await mountModule(flags.allowUnsafeMount);
      const m = await mount(new LocalClient(server, { via: 'mount' }), dir, {
        allowOther: flags.allowOther,
        ...allowed,
        log: say,
        refused: (r) => server.oplog.append({
          op: r.op,
          path: r.path,
          origin: { via: 'mount', ...(r.caller ? { uid: r.caller.uid, pid: r.caller.pid } : {}) },
          ok: false,
          error: { code: 'EACCES', message: r.message },
        }),
      });
      unmount = () => m.unmount();
      say(`Mounted the cluster at ${dir}`);
    }
  } catch (e) {
    await daemon.close().catch(() => {});
    for (const c of cleanups.reverse()) await c().catch(() => {});
    throw e;
  }
  server.attach();
  say(`Listening on ${daemon.control!.path}${flags.group ? ` (owner and group ${flags.group})` : ' (owner only)'}${daemon.url ? ` and ${daemon.url}` : '; no TCP port (ask with -a HOST:PORT)'}`);
  say(reachHint(daemon.url, flags.mount === false ? undefined : flags.mount ?? '/circuit'));
  process.stdout.write((daemon.url || daemon.control!.path) + '\n');
}

/** The line that tells a new user how to use what just started (README, "Set up"). */
function reachHint(url: string | undefined, mounted: string | undefined): string {
  const here = 'circuit ls / (the CLI finds this server by itself, as this user on this machine)';
  const there = url ? `; from elsewhere: circuit ls / -d ${url}` : '';
  const files = mounted ? `; or as files: ls ${mounted}` : '';
  return `Use it: ${here}${there}${files}`;
}

/** --allow-uid UID[,UID…] and --allow-group GROUP[,GROUP…]: who may act through an --allow-other mount. */
export function allowList(flags: { allowOther?: boolean; allowUid?: string; allowGroup?: string }): { allowUids: number[]; allowGids: number[] } {
  const list = (s: string | undefined) => (s ?? '').split(',').map((x) => x.trim()).filter(Boolean);
  const allowUids = list(flags.allowUid).map((u) => {
    if (!/^\d+$/.test(u)) throw new AppError('EINVAL', `--allow-uid: ${JSON.stringify(u)} is not a numeric uid`);
    return Number(u);
  });
  const allowGids = list(flags.allowGroup).map(groupId);
  if ((allowUids.length || allowGids.length) && !flags.allowOther) {
    throw new AppError('EINVAL', '--allow-uid and --allow-group name who may act through an --allow-other mount; give --allow-other too');
  }
  return { allowUids, allowGids };
}

/** --if IFACE: the interface's address, on -a's port when -a is given too, else a free one. */
function ifaceAddr(iface: string, addr: string | undefined): string {
  const port = addr ? parseHostPort(addr).port : 0;
  return hostPort(interfaceAddress(iface), port);
}

/**
 * The mount module, once its fuse-native binding is known to report callers: without that, a
 * reader blocked in the mount (`cat …/chan/recv`) cannot be interrupted, not even by SIGKILL,
 * until an answer comes. Such a build is refused unless --allow-unsafe-mount.
 */
async function mountModule(allowUnsafe: boolean | undefined): Promise<typeof import('../fs/mount')> {
  const m = await import('../fs/mount');
  if (!m.reportsCallers && !allowUnsafe) {
    const script = path.join(packageRoot(), 'scripts/patch-fuse-native.sh');
    throw new AppError('ENOTSUP', `refusing to mount: this fuse-native build does not report callers, so a reader blocked in the mount could not be interrupted (not even by kill -9); build the patched one with \`sh ${script}\` (what npm install runs), or start with --allow-unsafe-mount`);
  }
  return m;
}

/** True for a loopback bind address (127.0.0.0/8, ::1, localhost). */
function isLoopback(addr: string): boolean {
  const host = addr.replace(/:\d+$/, '').replace(/^\[|\]$/g, '');
  return /^127\./.test(host) || host === '::1' || host === 'localhost';
}

/** The mesh (src/node/mesh.ts): membership, routing, -j, join requests and discovery. */
startHooks.push(async (server, flags) => {
  if (!server.url) return; // no TCP port: a singleton, reachable only through its socket
  const { startMesh } = await import('../node/mesh');
  const { connect } = await import('../client/remote');
  const key = resolveKey(flags.hmac);
  const handshake = keyedHandshake(key);
  const mesh = await startMesh(server, {
    key,
    dial: (url) => connect(url, { handshake, via: 'peer', timeoutMs: 3000 }),
    join: flags.join,
    joinTimeoutMs: flags.joinTimeout !== undefined ? Number(flags.joinTimeout) : undefined,
    idleMs: flags.idleClose !== undefined ? milliseconds(flags.idleClose, '--idle-close') : undefined,
    discover: flags.discover || process.env.CIRCUIT_DISCOVER || undefined,
    log: (l) => server.oplog.say(l),
  });
  return () => mesh.close();
});

/** `circuit mount DIR -d URL`: the view alone, from a process that hosts nothing. */
export async function mountOnly(dir: string, client: import('../api/types').Client, flags: { allowOther?: boolean; allowUid?: string; allowGroup?: string; allowUnsafeMount?: boolean }): Promise<void> {
  const say = (l: string) => process.stderr.write(oneLine(l) + '\n');
  const { mount } = await mountModule(flags.allowUnsafeMount);
  const m = await mount(client, dir, { allowOther: flags.allowOther, ...allowList(flags), log: say });
  say(`Mounted the cluster at ${dir}`);
  let stopping = false;
  const stop = async () => {
    if (stopping) return;
    stopping = true;
    await m.unmount().catch((e: CircuitError) => say(`unmount: ${e.message}`));
    await client.disconnect().catch(() => {});
    process.exit(0);
  };
  process.on('SIGTERM', () => void stop());
  process.on('SIGINT', () => void stop());
}

/** A flag's value as a number of milliseconds (0 or more), or a clear error. */
function milliseconds(v: string, flag: string): number {
  const n = Number(v);
  if (v.trim() === '' || !Number.isFinite(n) || n < 0) throw new AppError('EINVAL', `${flag}: not a number of milliseconds: ${JSON.stringify(v)}`);
  return n;
}
