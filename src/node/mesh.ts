/**
 * The mesh: what makes one server part of a cluster. It runs SWIM membership on a UDP socket
 * at the same host:port as the server's TCP listener, shows it as the server's view (`ls /`,
 * @join/@leave, `members`), routes calls on other servers' paths through a connection pool, and
 * joins other servers: by URL at start (`-j`), on request (`circuit join`), or when multicast
 * discovery hears them.
 *
 * With a cluster key, membership datagrams are sealed (src/cluster/membership-seal.ts: a MAC
 * under a key derived from the cluster key, bound to sender and destination, a timestamp and a
 * replay window), so nobody without the key can add, suspect or kill members.

 */
import { q } from './oplog';
import { EventEmitter } from 'node:events';
import os = require('node:os');
import net = require('node:net');
import { promises as dns } from 'node:dns';
import { backoffDelay } from '../kit/backoff';
import type { Member as ViewMember } from '../api/types';
import type { Server } from './server';
import { Membership, type Member } from '../cluster/membership';
import type { MembershipConfig } from '../cluster/membership-config';
import { UdpTransport } from '../cluster/transport-udp';
import { SealedTransport } from '../cluster/membership-seal';
import { Discovery, parseGroup, type DiscoverySchedule } from '../cluster/discovery';
import { formatUrl, hostPort, parseJoinTarget, parseUrl } from '../cluster/url';
import { Pool, type Dialer } from './pool';
import { AppError, SystemError, toCircuitError } from '../kit/errors';

export interface MeshOptions {
  dial: Dialer;
  key: Buffer | null;
  /** Targets to join at start (circuit URLs, HOST:PORT, NAME:PORT); each retried with
   *  backoff, each failure logged; the start waits for the first success. */
  join?: string[];
  /** With join: fail the start if the join has not succeeded after this many ms. */
  joinTimeoutMs?: number;
  /** GROUP:PORT[@IFADDR] for multicast discovery. */
  discover?: string;
  config?: Partial<MembershipConfig>;
  /** Close a pooled connection to another server after this many ms unused (pool.ts). */
  idleMs?: number;
  schedule?: DiscoverySchedule;
  log: (line: string) => void;
}

export interface Mesh {
  membership: Membership;
  pool: Pool;
  discovery?: Discovery;
  /** Announces our departure (others see @leave at once) and closes everything. */
  close(): Promise<void>;
}

/** The server's view over membership: live members and join/leave events. */
class MeshView extends EventEmitter {
  constructor(readonly m: Membership) {
    super();
    m.on('join', (x: Member) => this.emit('join', slim(x)));
    m.on('leave', (x: Member) => this.emit('leave', slim(x)));
  }
  members(): ViewMember[] {
    return this.m.members().map(slim);
  }
}

function slim(m: Member): ViewMember {
  return { id: m.id, url: m.url, state: m.state };
}

const UNSPECIFIED = new Set(['0.0.0.0', '::', '0:0:0:0:0:0:0:0']);

/** A concrete address of this host for an unspecified bind: the first non-internal IPv4. */
export function hostAddress(): string {
  for (const list of Object.values(os.networkInterfaces())) {
    for (const a of list ?? []) if (a.family === 'IPv4' && !a.internal) return a.address;
  }
  return '127.0.0.1';
}

export { hostPort };

/** The packet address of a circuit URL (its TCP host:port, where the UDP socket also is). */
export function packetAddr(url: string): string {
  const u = parseUrl(url);
  return hostPort(u.host, u.port);
}

export async function startMesh(server: Server, opts: MeshOptions): Promise<Mesh> {
  const bound = parseUrl(server.url);
  const host = UNSPECIFIED.has(bound.host) ? hostAddress() : bound.host;
  const url = formatUrl({ ...bound, host });
  const udp = await UdpTransport.bind(hostPort(host, bound.port));
  const transport = opts.key ? new SealedTransport(udp, opts.key, server.id) : udp;
  const membership = new Membership({
    id: server.id,
    url,
    transport,
    config: opts.config,
    log: (level, msg) => {
      if (level !== 'debug') opts.log(msg);
    },
  });
  membership.on('join', (m: Member) => m.id !== server.id && opts.log(`Member ${q(m.id)} joined (${q(m.url)})`));
  membership.on('leave', (m: Member) => {
    opts.log(`Member ${q(m.id)} ${m.state === 'left' ? 'left' : 'is dead'}`);
    pool.drop(m.id, `server ${m.id} ${m.state === 'left' ? 'left the cluster' : 'stopped answering (declared dead)'}`);
  });
  const pool = new Pool(opts.dial, (id) => {
    const m = membership.member(id);
    return m && (m.state === 'alive' || m.state === 'suspect') ? m.url : undefined;
  }, { idleMs: opts.idleMs });
  const view = new MeshView(membership);


  let closed = false;
  /**
   * Joins the cluster of a target: a circuit URL or HOST:PORT with an IP address is
   * membership's own join (its backoff, its messages). A NAME:PORT is looked up on every round
   * and every address it has is tried at once; the first that answers wins (membership learns
   * its id and URL in the exchange), and a round in which none answers is retried with
   * membership's backoff: forever with `retry`, else joinAttempts rounds; `timeout` bounds both.
   */
  const joinTarget = async (target: string, retry: boolean, timeout?: number): Promise<void> => {
    const { host, port } = parseJoinTarget(target);
    if (net.isIP(host.replace(/%.*$/, ''))) {
      const addr = hostPort(host, port);
      if (addr !== membership.addr) await membership.join(addr, { retry, timeout });
      return;
    }
    const cfg = membership.cfg;
    const deadline = timeout === undefined ? Infinity : Date.now() + timeout;
    const rounds = retry ? Infinity : Math.max(1, cfg.joinAttempts);
    for (let n = 0; !closed; n++) {
      let why: string;
      let addrs: string[] = [];
      try {
        addrs = (await dns.lookup(host, { all: true })).map((a) => hostPort(a.address, port)).filter((a) => a !== membership.addr);
        if (!addrs.length) return; // the name is only us
        const budget = Math.max(1, Math.min(cfg.syncTimeout, deadline - Date.now()));
        await Promise.any(addrs.map((a) => membership.join(a, { retry: true, timeout: budget })));
        return;
      } catch (e) {
        why = addrs.length ? `no answer from ${addrs.join(', ')}` : `cannot resolve ${host}: ${(e as Error).message}`;
      }
      if (closed) break;
      opts.log(`join ${target}: round ${n + 1} failed: ${why}`);
      const delay = backoffDelay(n, { initial: cfg.joinBackoffInitial, factor: cfg.joinBackoffFactor, max: cfg.joinBackoffMax, spread: 0.4 }, Math.random());
      if (n + 1 >= rounds) throw new SystemError('EHOSTDOWN', `cannot join ${target}: no answer after ${n + 1} attempts (${why})`);
      if (Date.now() + delay >= deadline) throw new SystemError('ETIMEDOUT', `cannot join ${target}: no answer within ${timeout} ms (${why})`);
      await new Promise((r) => setTimeout(r, delay).unref());
    }
    throw new SystemError('ECANCELED', 'the server is stopping');
  };
  server.useMesh({
    view,
    route: (id) => pool.route(id),
    async join(target) {
      try {
        await joinTarget(target.trim(), false);
      } catch (e) {
        const err = toCircuitError(e);
        if (err.code === 'EINVAL') throw err;
        throw new SystemError(err.code, `panic joining: ${err.message}`, { cause: e });
      }
    },
  });

  const mesh: Mesh = {
    membership,
    pool,
    async close() {
      closed = true;
      mesh.discovery?.close();
      server.useMesh(null);
      await membership.leave().catch(() => {});
      pool.close();
    },
  };

  try {
    const targets = opts.join ?? [];
    if (targets.length) {
      for (const t of targets) parseJoinTarget(t);
      const each = targets.map((t) =>
        joinTarget(t, true, opts.joinTimeoutMs).then(
          () => opts.log(`Joined the cluster of ${t}`),
          (e) => {
            opts.log(`join ${t}: ${toCircuitError(e).message}`);
            throw e;
          },
        ),
      );
      const joined = Promise.any(each);
      if (opts.joinTimeoutMs !== undefined) {
        await joined.catch((e: AggregateError) => {
          throw new AppError('ETIMEDOUT', e.errors.map((x) => toCircuitError(x).message).join('; '));
        });
      } else {
        joined.catch(() => {});
        // Give a target that is up the chance to answer before we print our URL.
        await Promise.race([joined.catch(() => {}), new Promise((r) => setTimeout(r, 2000).unref())]);
      }
    }
    if (opts.discover) {
      const spec = parseGroup(opts.discover);
      const joining = new Set<string>();
      mesh.discovery = await Discovery.start({
        spec: { ...spec, iface: spec.iface ?? host },
        key: opts.key,
        self: { id: server.id, url },
        schedule: opts.schedule,
        log: opts.log,
        onServer: (a) => {
          const m = membership.member(a.id);
          if ((m && (m.state === 'alive' || m.state === 'suspect')) || joining.has(a.id)) return;
          joining.add(a.id);
          joinTarget(a.url, false)
            .catch((e) => opts.log(`discovered ${q(a.id)} at ${q(a.url)}, but: ${toCircuitError(e).message}`))
            .finally(() => joining.delete(a.id));
        },
      });
      opts.log(`Discovering servers on ${spec.group}:${spec.port} via ${spec.iface ?? host}`);
    }
  } catch (e) {
    mesh.discovery?.close();
    membership.close();
    pool.close();
    throw e;
  }
  return mesh;
}

