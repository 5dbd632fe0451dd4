import { AppError } from '../../kit/errors';
import { json, readAll } from '../io';
import { SPEC_MAX } from '../../api/limits';
import { type Command, P, one, flat } from '../rows';

/** The CLI rows of the docker kind (docs/cli.md). */
export const mkdkr: Command = {
  name: 'mkdkr', usage: '[--scrub] PATH < RUN.json', summary: 'start a docker container from the JSON Run on standard input',
  args: one, argsError: 'mkdkr needs an anchor argument', op: 'mkdkr',
  flags: [['--scrub', 'remove the element once the container exited and its output was read']],
  async run(c, a, f) {
    let run: Record<string, unknown>;
    try {
      run = JSON.parse((await readAll(SPEC_MAX, 'json spec')).toString());
    } catch (e) {
      throw new AppError('EINVAL', `command json not parsing: ${flat((e as Error).message)}`);
    }
    if (f.scrub) run.Scrub = true;
    await c.make(P(a[0]), 'docker', run as never);
  },
};
