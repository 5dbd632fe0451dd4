import { type Command, P, two } from '../rows';

/** The CLI rows of the dns kind (docs/cli.md). */
export const mkdns: Command = {
  name: 'mkdns', usage: 'PATH [ADDR]', summary: 'start a DNS server (on ADDR, default 127.0.0.1:0)',
  args: (a) => a.length === 1 || a.length === 2, argsError: 'mkdns needs an anchor and an optional address arguments', op: 'mkdns',
  async run(c, a) {
    await c.make(P(a[0]), 'dns', a[1] ? { addr: a[1] } : {});
  },
};

export const set: Command = {
  name: 'set', usage: 'PATH RR', summary: 'add a resource record to a DNS element',
  args: two, argsError: 'set needs an anchor and a resource record arguments', op: 'set resoure record', // the original's spelling: scripts match it
  async run(c, a) {
    await c.dnsSet(P(a[0]), a[1], false);
  },
};

export const unset: Command = {
  name: 'unset', usage: 'PATH NAME', summary: 'remove every record of NAME from a DNS element',
  args: two, argsError: 'unset needs an anchor and a resource name arguments', op: 'unset',
  async run(c, a) {
    await c.dnsUnset(P(a[0]), a[1]);
  },
};
