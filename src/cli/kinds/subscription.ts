import { type Command, P, one } from '../rows';

/** The CLI rows of the subscription kind (docs/cli.md). */
export const mkatjoin: Command = {
  name: 'mk@join', usage: 'PATH', summary: 'subscribe to servers joining',
  args: one, argsError: 'mk@join needs one anchor argument', op: 'mk@join',
  async run(c, a) {
    await c.make(P(a[0]), '@join', null);
  },
};

export const mkatleave: Command = {
  name: 'mk@leave', usage: 'PATH', summary: 'subscribe to servers leaving',
  args: one, argsError: 'mk@leave needs one anchor argument', op: 'mk@leave',
  async run(c, a) {
    await c.make(P(a[0]), '@leave', null);
  },
};
