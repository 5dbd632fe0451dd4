import { parseProcCmd } from '../../api/cmd';
import { toCircuitError } from '../../kit/errors';
import { copyByServer, copyStream, json, readAll, writeOut } from '../io';
import { withReadAhead } from '../../node/read-ahead';
import { SPEC_MAX } from '../../api/limits';
import { type Command, P, one, two, oneLine } from '../rows';

/** The CLI rows of the proc kind (docs/cli.md). */
export const mkproc: Command = {
  name: 'mkproc', usage: '[--scrub] PATH < CMD.json', summary: 'start a process from the JSON Cmd on standard input',
  args: one, argsError: 'mkproc needs an anchor argument', op: 'mkproc',
  flags: [['--scrub', 'remove the element once the process exited and its output was read']],
  async run(c, a, f) {
    const text = (await readAll(SPEC_MAX, 'json spec')).toString();
    const cmd = oneLine(() => parseProcCmd(text));
    if (f.scrub) cmd.Scrub = true;
    await c.make(P(a[0]), 'proc', cmd);
  },
};

export const stdio: Command[] = (['stdin', 'stdout', 'stderr'] as const).map<Command>((which) => ({
  name: which, usage: 'PATH', summary: which === 'stdin' ? 'copy standard input to the process, then close its stdin' : `copy the process's ${which} to standard output`,
  args: one, argsError: 'stdin|stdout|stderr needs one anchor argument', op: which === 'stdin' ? 'transmission' : 'transmission',
  async run(c, a) {
    const path = P(a[0]);
    if (which === 'stdin') {
      const w = await c.openInput(path);
      for await (const chunk of process.stdin) await w.write(chunk as Buffer);
      await w.close();
      return;
    }
    // The server writes into our pipe when it can (exactly once, whatever kills us); otherwise
    // the next reads stay in flight while this one is written out (src/node/read-ahead.ts),
    // and each write is acknowledged at once.
    if (await copyByServer(c, path, which)) return;
    await copyStream(withReadAhead(await c.openOutput(path, which), true));
  },
}));

export const signal: Command = {
  name: 'signal', usage: 'SIG PATH', summary: 'send a signal (TERM, kill, SIGHUP, 9) to a process or container',
  args: two, argsError: 'signal needs an anchor and a signal name arguments', op: 'signal',
  async run(c, a) {
    await c.signal(P(a[1]), a[0]);
  },
};

export const wait: Command = {
  name: 'wait', usage: 'PATH', summary: 'wait for a process or container to exit; print its final state',
  args: one, argsError: 'wait needs one anchor argument', op: 'wait',
  async run(c, a) {
    await writeOut(json(await c.wait(P(a[0]))));
  },
};

export const waitall: Command = {
  name: 'waitall', usage: '< PATHS', summary: 'wait for every process or container named on standard input',
  args: (a) => a.length === 0, argsError: 'waitall takes its anchors on standard input', op: 'wait',
  async run(c) {
    const paths = (await readAll(SPEC_MAX, 'list of paths')).toString().split('\n').map((l) => l.trim()).filter(Boolean);
    const results = await Promise.allSettled(paths.map((p) => c.wait(P(p))));
    let failed: unknown;
    results.forEach((r, i) => {
      if (r.status === 'rejected') {
        const e = toCircuitError(r.reason);
        if (e.code === 'EINVAL' || e.code === 'ENOENT') process.stderr.write(`circuit: anchor ${P(paths[i])} is not a process or a docker container\n`);
        else failed ??= e;
      }
    });
    if (failed) throw failed;
  },
};
