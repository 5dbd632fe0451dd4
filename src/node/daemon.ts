import { WIRE_OVERHEAD } from '../api/limits';
import fs = require('node:fs');
import os = require('node:os');
import path = require('node:path');
import { Server, type ServerOptions } from './server';
import { serveSession } from './serve';
import { listen, plainHandshake, type Endpoint, type Handshake, type ListenLimits } from '../cluster/tcp';
import { PushHub } from './push';
import { RefusalLog } from '../cluster/refusal-log';
import { formatUrl, newWorkerId, parseHostPort } from '../cluster/url';
import { AppError } from '../kit/errors';
import { processRuns } from '../kit/pid';
import { listenControl, type ControlSocket } from './control';

/**
 * One daemon: a Server, its var folder (lock and operations log), its TCP endpoint (unless told
 * to have none) and its control socket (when asked; src/node/control.ts). The CLI's `start`
 * wraps this with printing, signals and the mount; tests and benchmarks use it directly.
 */
export interface DaemonOptions extends Omit<ServerOptions, 'url' | 'logFile'> {
  /** HOST:PORT to bind; default 127.0.0.1:0; null: no TCP port at all (the URL is then ''). */
  addr?: string | null;
  /** Listen on a control socket: at path (default: the user's socket directory), widened to group. */
  control?: { path?: string; group?: string };
  /** The var folder; default $TMPDIR/circuit-<worker>-P<pid>. */
  varDir?: string;
  handshake?: Handshake;
  /** Caps on connections still in their handshake (src/cluster/tcp.ts). */
  limits?: Partial<ListenLimits>;
}

export interface Daemon {
  server: Server;
  /** The circuit URL of the TCP endpoint; '' without one. */
  url: string;
  worker: string;
  varDir: string;
  endpoint?: Endpoint;
  control?: ControlSocket;
  /** The pushes to readers on other servers (src/node/push.ts); none with a cluster key. */
  push?: PushHub;
  close(): Promise<void>;
}

export async function startDaemon(opts: DaemonOptions = {}): Promise<Daemon> {
  const bind = opts.addr === null ? null : parseHostPort(opts.addr ?? '127.0.0.1:0');
  const worker = newWorkerId();
  const varDir = (opts.varDir ?? path.join(os.tmpdir(), `circuit-%W-P${String(process.pid).padStart(4, '0')}`)).replace('%W', worker);
  lockVar(varDir, opts.stderr);
  const server = new Server({ ...opts, logFile: path.join(varDir, 'ops.log') });
  const self = { worker, pid: process.pid };
  let control: ControlSocket | undefined;
  if (opts.control) {
    const config = { maxMessage: server.maxMessage + WIRE_OVERHEAD };
    control = await listenControl({ ...opts.control, serverId: server.id, config, onSession: (s) => serveSession(server, s, { ...self, local: true }) });
  }
  // Refusals are logged at most one line a second (a stranger may cause thousands).
  const refusals = new RefusalLog((l) => server.oplog.say(l));
  // Streams pushed raw to readers on other servers (src/node/push.ts): only without a key.
  const push = (opts.handshake ?? plainHandshake) === plainHandshake && process.env.CIRCUIT_NO_PUSH !== '1' ? new PushHub() : undefined;
  let endpoint: Endpoint | null = null;
  try {
    endpoint = bind && await listen(bind.host, bind.port, (s) => {
      serveSession(server, s, { ...self, push });
      // A peer that breaks the protocol (garbage, too much data) is cut off; say so, as the
      // handshake's refusals are.
      void s.closed.then((e) => {
        if (e.code === 'EPROTO' || e.code === 'EMSGSIZE') refusals.add(`rejecting connection: ${e.message}`, s.remote.replace(/:\d+$/, ''));
      });
    }, {
      handshake: opts.handshake,
      limits: opts.limits,
      // A peer streaming a message larger than this server takes is cut off as the bytes come,
      // instead of being assembled first and refused after.
      config: { maxMessage: server.maxMessage + WIRE_OVERHEAD },
      onError: (e, addr) => refusals.add(`rejecting connection: ${e.message}`, addr),
      onData: push?.take,
    });
  } catch (e) {
    refusals.close();
    await control?.close();
    throw e;
  }
  server.url = endpoint ? formatUrl({ host: endpoint.host, port: endpoint.port, pid: process.pid, worker }) : '';
  return {
    server,
    url: server.url,
    worker,
    varDir,
    endpoint: endpoint ?? undefined,
    control,
    push,
    async close() {
      await control?.close();
      await endpoint?.close();
      refusals.close();
      await server.shutdown();
      fs.rmSync(path.join(varDir, '.lock'), { force: true });
    },
  };
}

/** Creates the var folder (0700) and takes its lock: a live daemon's lock refuses a second one. */
function lockVar(dir: string, say: ((l: string) => void) | undefined): void {
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  const lock = path.join(dir, '.lock');
  try {
    const pid = Number(fs.readFileSync(lock, 'utf8').trim());
    if (pid && pid !== process.pid && processRuns(pid)) throw new AppError('EBUSY', `obtain lock (${lock}): held by running process ${pid}`);
  } catch (e) {
    if (e instanceof AppError) throw e;
  }
  fs.writeFileSync(lock, String(process.pid) + '\n', { mode: 0o600 });
  (say ?? ((l: string) => process.stderr.write(l + '\n')))(`Created and locked ${lock}`);
}
