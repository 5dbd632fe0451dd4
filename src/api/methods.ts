import type { Client } from './types';

/**
 * The Client methods that travel as one request each, with the number of positional arguments
 * before their CallOptions. The remote client and the server's request handler both derive from
 * this table, so a method added to the API is one line here.
 */
export const METHODS = {
  home: 0,
  list: 1,
  stat: 1,
  hold: 1,
  unhold: 1,
  peek: 1,
  make: 3,
  scrub: 1,
  setCap: 2,
  send: 2,
  trysend: 2,
  tryrecv: 1,
  close: 1,
  start: 2,
  signal: 2,
  wait: 1,
  env: 1,
  dnsSet: 3,
  dnsUnset: 2,
  dnsRebind: 2,
  members: 1,
  join: 2,
  stop: 1,
  log: 1,
  stk: 1,
} as const satisfies Partial<Record<keyof Client, number>>;

export type PlainMethod = keyof typeof METHODS;

export function isPlainMethod(op: string): op is PlainMethod {
  return Object.prototype.hasOwnProperty.call(METHODS, op);
}
