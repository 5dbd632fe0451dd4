import fs = require('node:fs');
import path = require('node:path');
import { findSocket, isSocketPath } from '../node/control';
import { connect, connectSocket, type RemoteClient } from '../client/remote';
import { AppError, SystemError } from '../kit/errors';
import { keyedHandshake } from '../cluster/tcp';
import { resolveKey } from '../cluster/keys';

/**
 * Chooses the dial-in server in the documented order (docs/cli.md, fixing the original's
 * bug that made $CIRCUIT unreachable): -d URL, then --socket PATH, then an explicit --discover,
 * then the file named by $CIRCUIT, then $CIRCUIT_DISCOVER, then $CIRCUIT_SOCKET, and last the
 * only live control socket in this user's socket directory (src/node/control.ts), so a server
 * started on this machine answers with nothing said. Nothing is multicast unless asked. Where a
 * URL is expected, a path (`/…`, `./…`) names a control socket instead: `circuit start` prints one
 * when it opens no TCP port.
 */
export interface DialFlags {
  dial?: string;
  socket?: string;
  discover?: string;
  hmac?: string;
}

export type Discover = (mcast: string, timeoutMs: number, key: Buffer | null) => Promise<string>;

/** Multicast discovery (src/cluster/discovery.ts), loaded only when used; tests may replace it. */
export let discover: Discover | undefined = async (mcast, timeoutMs, key) =>
  (await import('../cluster/discovery')).discoverServer(mcast, timeoutMs, key);
export function setDiscover(d: Discover): void {
  discover = d;
}

export async function resolveUrl(flags: DialFlags, env: NodeJS.ProcessEnv = process.env): Promise<string> {
  if (flags.dial) return flags.dial.trim();
  if (flags.socket) return path.resolve(flags.socket);
  if (flags.discover) return viaDiscovery(flags.discover, flags.hmac);
  if (env.CIRCUIT) {
    try {
      return fs.readFileSync(env.CIRCUIT, 'utf8').trim();
    } catch (e) {
      throw new AppError('EINVAL', `circuit environment file ${env.CIRCUIT} is not readable: ${(e as Error).message}`);
    }
  }
  if (env.CIRCUIT_DISCOVER) return viaDiscovery(env.CIRCUIT_DISCOVER, flags.hmac);
  if (env.CIRCUIT_SOCKET) return path.resolve(env.CIRCUIT_SOCKET);
  return findSocket(env);
}

async function viaDiscovery(mcast: string, hmac: string | undefined): Promise<string> {
  if (!discover) throw new AppError('ENOTSUP', 'multicast discovery is not built into this version; use -dial URL or $CIRCUIT');
  try {
    return await discover(mcast, 5000, resolveKey(hmac));
  } catch (e) {
    if (e instanceof AppError) throw e;
    throw new SystemError('EHOSTDOWN', `multicast address ${mcast} is unresponsive or authentication failed: ${(e as Error).message}`, { cause: e });
  }
}

/**
 * Dials the chosen server, with the key of --hmac or $CIRCUIT_HMAC when one is given. A command
 * of the CLI sends its first call right behind the hello (RemoteOptions.early): it is one call
 * and an exit, and a round trip is a good part of its time (BENCHMARKS.md, #7).
 */
export async function dialClient(flags: DialFlags, via: 'cli' | 'mount' = 'cli'): Promise<RemoteClient> {
  const url = await resolveUrl(flags);
  const early = via === 'cli';
  if (isSocketPath(url)) return connectSocket(url, { via, early });
  const handshake = keyedHandshake(resolveKey(flags.hmac));
  return connect(url, { handshake, via, early });
}
