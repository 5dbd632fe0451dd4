import { AppError } from '../../kit/errors';
import { ackSurely, readAll, recvByServer, writeOut } from '../io';
import { dialClient } from '../dial';
import { MESSAGE_MAX } from '../../api/limits';
import { type Command, P, one } from '../rows';

/** The CLI rows of the chan kind (docs/cli.md). */
export const mkchan: Command = {
  name: 'mkchan', usage: 'PATH CAP', summary: 'make a channel with capacity CAP',
  args: (a) => a.length === 2, argsError: 'mkchan needs an anchor and a capacity arguments', op: 'mkchan',
  async run(c, a) {
    if (!/^\d+$/.test(a[1].trim())) throw new AppError('EINVAL', 'second argument to mkchan must be a non-negative integral capacity');
    await c.make(P(a[0]), 'chan', { cap: Number(a[1].trim()) });
  },
};

export const send: Command = {
  name: 'send', usage: 'PATH < MESSAGE', summary: 'send standard input as one message',
  args: one, argsError: 'send needs one anchor argument', op: 'send',
  async run(c, a) {
    const path = P(a[0]);
    await c.stat(path); // fail before reading stdin when the path holds nothing
    await c.send(path, await readAll(MESSAGE_MAX, 'message'));
  },
};

export const recv: Command = {
  name: 'recv', usage: 'PATH', summary: 'receive one message (or one subscription event)',
  args: one, argsError: 'recv needs one anchor argument', op: 'recv',
  async run(c, a, f) {
    // With its server on this host, the server has the home forget the message, then writes it
    // into this process's stdout itself (src/node/pipe-out.ts). Otherwise the message stays its home's until this recv acknowledged it, end to end
    // (through a server in the middle too), and it is written out only once that is confirmed:
    // a recv killed before, or whose middle server died, leaves it queued; none writes it twice.
    if (await recvByServer(c, P(a[0]))) return;
    if (!c.recvUnacked) return writeOut(await c.recv(P(a[0])));
    const r = await c.recvUnacked(P(a[0]));
    await ackSurely(c, r, () => dialClient(f));
    await writeOut(r.msg);
  },
};

export const close: Command = {
  name: 'close', usage: 'PATH', summary: 'close a channel',
  args: one, argsError: 'close needs one anchor argument', op: 'close',
  async run(c, a) {
    await c.close(P(a[0]));
  },
};
