import type { Client, CallOptions, Origin } from '../api/types';
import type { Server } from '../node/server';

/**
 * The Client API inside a daemon: calls go straight to its Server, with this client's origin
 * stamped on each (unless the call brings its own, as the mount does with the caller's uid and
 * pid). Holds taken through it are dropped by disconnect().
 */
export class LocalClient implements Client {
  readonly #holds: string[] = [];

  constructor(
    readonly server: Server,
    readonly origin: Origin = { via: 'api' },
  ) {}

  #o(opts?: CallOptions): CallOptions {
    // The mount brings its caller's origin on every call: nothing to copy then.
    return opts?.origin ? opts : { signal: opts?.signal, origin: this.origin };
  }

  home: Client['home'] = () => this.server.home();
  list: Client['list'] = (p, o) => this.server.list(p, this.#o(o));
  stat: Client['stat'] = (p, o) => this.server.stat(p, this.#o(o));
  hold: Client['hold'] = async (p, o) => {
    await this.server.hold(p, this.#o(o));
    this.#holds.push(p);
  };
  unhold: Client['unhold'] = async (p, o) => {
    await this.server.unhold(p, this.#o(o));
    const i = this.#holds.indexOf(p);
    if (i >= 0) this.#holds.splice(i, 1);
  };
  peek: Client['peek'] = (p, o) => this.server.peek(p, this.#o(o));
  listNow: NonNullable<Client['listNow']> = (p, o) => this.server.listNow(p, this.#o(o));
  statNow: NonNullable<Client['statNow']> = (p, o) => this.server.statNow(p, this.#o(o));
  peekNow: NonNullable<Client['peekNow']> = (p, o) => this.server.peekNow(p, this.#o(o));
  make: Client['make'] = (p, k, s, o) => this.server.make(p, k, s, this.#o(o));
  scrub: Client['scrub'] = (p, o) => this.server.scrub(p, this.#o(o));
  setCap: Client['setCap'] = (p, c, o) => this.server.setCap(p, c, this.#o(o));
  send: Client['send'] = (p, m, o) => this.server.send(p, m, this.#o(o));
  recv: Client['recv'] = (p, o) => this.server.recv(p, this.#o(o));
  trysend: Client['trysend'] = (p, m, o) => this.server.trysend(p, m, this.#o(o));
  tryrecv: Client['tryrecv'] = (p, o) => this.server.tryrecv(p, this.#o(o));
  close: Client['close'] = (p, o) => this.server.close(p, this.#o(o));
  unrecv = async (p: string, m: Buffer): Promise<void> => this.server.unrecv(p, m);
  recvUnacked: NonNullable<Client['recvUnacked']> = (p, o) => this.server.recvUnacked(p, this.#o(o));
  tryrecvUnacked: NonNullable<Client['tryrecvUnacked']> = (p, o) => this.server.tryrecvUnacked(p, this.#o(o));
  start: Client['start'] = (p, c, o) => this.server.start(p, c, this.#o(o));
  signal: Client['signal'] = (p, s, o) => this.server.signal(p, s, this.#o(o));
  wait: Client['wait'] = (p, o) => this.server.wait(p, this.#o(o));
  env: Client['env'] = (p, o) => this.server.env(p, this.#o(o));
  openInput: Client['openInput'] = (p, o) => this.server.openInput(p, this.#o(o));
  openOutput: Client['openOutput'] = (p, w, o) => this.server.openOutput(p, w, this.#o(o));
  dnsSet: Client['dnsSet'] = (p, r, x, o) => this.server.dnsSet(p, r, x, this.#o(o));
  dnsUnset: Client['dnsUnset'] = (p, n, o) => this.server.dnsUnset(p, n, this.#o(o));
  dnsRebind: Client['dnsRebind'] = (p, a, o) => this.server.dnsRebind(p, a, this.#o(o));
  members: Client['members'] = (p, o) => this.server.members(p, this.#o(o));
  join: Client['join'] = (p, u, o) => this.server.join(p, u, this.#o(o));
  stop: Client['stop'] = (p, o) => this.server.stop(p, this.#o(o));
  log: Client['log'] = (p, o) => this.server.log(p, this.#o(o));
  stk: Client['stk'] = (p, o) => this.server.stk(p, this.#o(o));

  async disconnect(): Promise<void> {
    for (const p of this.#holds.splice(0)) await this.server.unhold(p).catch(() => {});
  }
}
