import { writeOut } from '../io';
import { type Command, one, two, serverAnchor } from '../rows';

/** The CLI rows of the server kind (docs/cli.md). */
export const join: Command = {
  name: 'join', usage: '/Xid URL', summary: 'make server Xid join the cluster of URL',
  args: two, argsError: 'join needs one anchor argument and one circuit address argument', op: 'join',
  async run(c, a) {
    await c.join(serverAnchor(a[0]), a[1].trim());
  },
};

export const stop: Command = {
  name: 'stop', usage: '/Xid', summary: 'stop server Xid (its processes get SIGTERM, then SIGKILL)',
  args: one, argsError: 'stop needs one server anchor argument', op: 'stop',
  async run(c, a) {
    await c.stop(serverAnchor(a[0]));
  },
};

export const stk: Command = {
  name: 'stk', usage: '/Xid', summary: "print server Xid's report: main stack, pending operations, open handles, loop delay, heap",
  args: one, argsError: 'stk needs one server anchor argument', op: 'stk',
  async run(c, a) {
    await writeOut(await c.stk(serverAnchor(a[0])));
  },
};

export const suicide: Command = {
  name: 'suicide', usage: '/Xid', summary: 'the original name of stop (it ran the stack dump instead; fixed)',
  args: one, argsError: 'suicide needs one server anchor argument', op: 'stop',
  async run(c, a) {
    await c.stop(serverAnchor(a[0]));
  },
};
