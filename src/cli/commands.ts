import type { Client, Entry } from '../api/types';
import { parseProcCmd } from '../api/cmd';
import { AppError, CircuitError, toCircuitError } from '../kit/errors';
import { copyStream, json, readAll, writeOut } from './io';
import { MESSAGE_MAX, SPEC_MAX } from '../api/limits';

/**
 * The client commands (docs/cli.md), as a table: name, usage, the original's
 * argument-count text, the `<op> error` prefix, and the action. main.ts wires them to commander.
 */
export interface CommandFlags {
  long?: boolean;
  depth?: boolean;
  scrub?: boolean;
}

export interface Command {
  name: string;
  usage: string;
  summary: string;
  /** Accepts the positional arguments, or throws with the original's text. */
  args: (a: string[]) => boolean;
  argsError: string;
  /** Prefix for failures of the operation itself, as the original (`mkchan error: …`). */
  op?: string;
  flags?: Array<[string, string]>;
  run(c: Client, a: string[], f: CommandFlags): Promise<void>;
}

const one = (a: string[]) => a.length === 1;
const two = (a: string[]) => a.length === 2;

/** A trailing `...` means recursive for ls and is dropped by every other command (§2.1). */
export function cleanPath(p: string): { path: string; recursive: boolean } {
  const parts = p.split('/').filter(Boolean);
  const recursive = parts[parts.length - 1] === '...';
  if (recursive) parts.pop();
  return { path: '/' + parts.join('/'), recursive };
}
const P = (p: string) => cleanPath(p).path;

export const COMMANDS: Command[] = [
  {
    name: 'ls', usage: '[-l] [--de] PATH[/...]', summary: 'list anchors (PATH/... recursively)',
    args: one, argsError: 'ls needs a glob argument',
    flags: [['-l, --long', 'show the element kind of each anchor'], ['--de, --depth', 'list children before their parent when recursing']],
    async run(c, a, f) {
      const { path, recursive } = cleanPath(a[0]);
      const lines: string[] = [];
      const walk = async (p: string) => {
        let entries: Entry[];
        try {
          entries = await c.list(p);
        } catch (e) {
          if ((e as CircuitError).code === 'ENOENT') return;
          throw e;
        }
        for (const e of entries) {
          const line = f.long ? `${(e.kind ?? '·').padEnd(15)} ${e.path}` : e.path;
          if (!f.depth) lines.push(line);
          if (recursive) await walk(e.path);
          if (f.depth) lines.push(line);
        }
      };
      await walk(path);
      if (lines.length) await writeOut(lines.join('\n') + '\n');
    },
  },
  {
    name: 'mkchan', usage: 'PATH CAP', summary: 'make a channel with capacity CAP',
    args: (a) => a.length === 2, argsError: 'mkchan needs an anchor and a capacity arguments', op: 'mkchan',
    async run(c, a) {
      if (!/^\d+$/.test(a[1].trim())) throw new AppError('EINVAL', 'second argument to mkchan must be a non-negative integral capacity');
      await c.make(P(a[0]), 'chan', { cap: Number(a[1].trim()) });
    },
  },
  {
    name: 'send', usage: 'PATH < MESSAGE', summary: 'send standard input as one message',
    args: one, argsError: 'send needs one anchor argument', op: 'send',
    async run(c, a) {
      const path = P(a[0]);
      await c.stat(path); // fail before reading stdin when the path holds nothing
      await c.send(path, await readAll(MESSAGE_MAX, 'message'));
    },
  },
  {
    name: 'recv', usage: 'PATH', summary: 'receive one message (or one subscription event)',
    args: one, argsError: 'recv needs one anchor argument', op: 'recv',
    async run(c, a) {
      // The message stays its home's until this recv acknowledged it, end to end (through a
      // server in the middle too), and it is written out only once that is confirmed: a recv
      // killed before, or whose middle server died, leaves it queued; none writes it twice.
      if (!c.recvUnacked) return writeOut(await c.recv(P(a[0])));
      const r = await c.recvUnacked(P(a[0]));
      await r.ack();
      await writeOut(r.msg);
    },
  },
  {
    name: 'close', usage: 'PATH', summary: 'close a channel',
    args: one, argsError: 'close needs one anchor argument', op: 'close',
    async run(c, a) {
      await c.close(P(a[0]));
    },
  },
  {
    name: 'mkproc', usage: '[--scrub] PATH < CMD.json', summary: 'start a process from the JSON Cmd on standard input',
    args: one, argsError: 'mkproc needs an anchor argument', op: 'mkproc',
    flags: [['--scrub', 'remove the element once the process exited and its output was read']],
    async run(c, a, f) {
      const text = (await readAll(SPEC_MAX, 'json spec')).toString();
      const cmd = oneLine(() => parseProcCmd(text));
      if (f.scrub) cmd.Scrub = true;
      await c.make(P(a[0]), 'proc', cmd);
    },
  },
  {
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
  },
  {
    name: 'mkdns', usage: 'PATH [ADDR]', summary: 'start a DNS server (on ADDR, default 127.0.0.1:0)',
    args: (a) => a.length === 1 || a.length === 2, argsError: 'mkdns needs an anchor and an optional address arguments', op: 'mkdns',
    async run(c, a) {
      await c.make(P(a[0]), 'dns', a[1] ? { addr: a[1] } : {});
    },
  },
  {
    name: 'set', usage: 'PATH RR', summary: 'add a resource record to a DNS element',
    args: two, argsError: 'set needs an anchor and a resource record arguments', op: 'set resoure record', // the original's spelling: scripts match it
    async run(c, a) {
      await c.dnsSet(P(a[0]), a[1], false);
    },
  },
  {
    name: 'unset', usage: 'PATH NAME', summary: 'remove every record of NAME from a DNS element',
    args: two, argsError: 'unset needs an anchor and a resource name arguments', op: 'unset',
    async run(c, a) {
      await c.dnsUnset(P(a[0]), a[1]);
    },
  },
  {
    name: 'mk@join', usage: 'PATH', summary: 'subscribe to servers joining',
    args: one, argsError: 'mk@join needs one anchor argument', op: 'mk@join',
    async run(c, a) {
      await c.make(P(a[0]), '@join', null);
    },
  },
  {
    name: 'mk@leave', usage: 'PATH', summary: 'subscribe to servers leaving',
    args: one, argsError: 'mk@leave needs one anchor argument', op: 'mk@leave',
    async run(c, a) {
      await c.make(P(a[0]), '@leave', null);
    },
  },
  {
    name: 'signal', usage: 'SIG PATH', summary: 'send a signal (TERM, kill, SIGHUP, 9) to a process or container',
    args: two, argsError: 'signal needs an anchor and a signal name arguments', op: 'signal',
    async run(c, a) {
      await c.signal(P(a[1]), a[0]);
    },
  },
  {
    name: 'wait', usage: 'PATH', summary: 'wait for a process or container to exit; print its final state',
    args: one, argsError: 'wait needs one anchor argument', op: 'wait',
    async run(c, a) {
      await writeOut(json(await c.wait(P(a[0]))));
    },
  },
  {
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
  },
  ...(['stdin', 'stdout', 'stderr'] as const).map<Command>((which) => ({
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
      await copyStream(await c.openOutput(path, which));
    },
  })),
  {
    name: 'peek', usage: 'PATH', summary: "print an element's state as JSON (null for an empty anchor)",
    args: one, argsError: 'peek needs one anchor argument', op: 'peek',
    async run(c, a) {
      await writeOut(json(await c.peek(P(a[0]))));
    },
  },
  {
    name: 'scrub', usage: 'PATH', summary: 'remove the element at PATH',
    args: one, argsError: 'scrub needs one anchor argument', op: 'scrub',
    async run(c, a) {
      await c.scrub(P(a[0]));
    },
  },
  {
    name: 'join', usage: '/Xid URL', summary: 'make server Xid join the cluster of URL',
    args: two, argsError: 'join needs one anchor argument and one circuit address argument', op: 'join',
    async run(c, a) {
      await c.join(serverAnchor(a[0]), a[1].trim());
    },
  },
  {
    name: 'stop', usage: '/Xid', summary: 'stop server Xid (its processes get SIGTERM, then SIGKILL)',
    args: one, argsError: 'stop needs one server anchor argument', op: 'stop',
    async run(c, a) {
      await c.stop(serverAnchor(a[0]));
    },
  },
  {
    name: 'stk', usage: '/Xid', summary: "print server Xid's report: main stack, pending operations, open handles, loop delay, heap",
    args: one, argsError: 'stk needs one server anchor argument', op: 'stk',
    async run(c, a) {
      await writeOut(await c.stk(serverAnchor(a[0])));
    },
  },
  {
    name: 'suicide', usage: '/Xid', summary: 'the original name of stop (it ran the stack dump instead; fixed)',
    args: one, argsError: 'suicide needs one server anchor argument', op: 'stop',
    async run(c, a) {
      await c.stop(serverAnchor(a[0]));
    },
  },
];

/** Error texts print as one line: JSON parse errors quote the input, newlines and all. */
function flat(s: string): string {
  return s.replace(/\s*\n\s*/g, ' ');
}
function oneLine<T>(fn: () => T): T {
  try {
    return fn();
  } catch (e) {
    if (e instanceof CircuitError && e.message.includes('\n')) throw new AppError(e.code, flat(e.message));
    throw e;
  }
}

function serverAnchor(p: string): string {
  const parts = cleanPath(p).path.split('/').filter(Boolean);
  if (parts.length !== 1 || !/^X[0-9a-f]{16}$/.test(parts[0])) throw new AppError('EINVAL', 'not a server');
  return '/' + parts[0];
}
