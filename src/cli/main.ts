import type { Command as Commander } from 'commander';
import { COMMANDS, type Command, type CommandFlags } from './commands';
import type { DialFlags } from './dial';
import type { StartFlags } from './start';
import { VERSION } from '../kit/version';
import { toCircuitError, type CircuitError } from '../kit/errors';

/**
 * bin/circuit: wires the commands to commander. Errors print one line, `circuit: <message>`,
 * and exit 1 (unknown commands exit 3, as the original). The original's single-dash long flags
 * (-dial, -addr, …) are accepted. A client command in its plain form (`circuit peek /X -d URL`)
 * is parsed by quickParse without loading commander at all, which costs several milliseconds;
 * anything else (help, --version, `--`, an unknown flag, a missing value) goes to commander.
 */
const LONG_FLAGS = ['dial', 'socket', 'group', 'discover', 'hmac', 'addr', 'join', 'docker', 'var', 'mount', 'scrub', 'long', 'depth', 'de', 'if', 'no-mount', 'allow-other', 'allow-uid', 'allow-group', 'join-timeout', 'allow-unsafe-mount', 'idle-close', 'output', 'force'];

export function normalizeArgv(argv: string[]): string[] {
  return argv.map((a) => {
    const m = /^-([a-z][a-z-]+)(=.*)?$/.exec(a);
    return m && LONG_FLAGS.includes(m[1]) ? '-' + a : a;
  });
}

function fail(e: unknown, op?: string): never {
  const err: CircuitError = toCircuitError(e);
  const msg = err.system || !op || err.message.startsWith(`${op} error:`) ? err.message : `${op} error: ${err.message}`;
  process.stderr.write(`circuit: ${msg}\n`);
  process.exit(1);
}

/** Loads the client side only when a command needs it. */
async function dialClient(f: DialFlags, via?: 'cli' | 'mount') {
  return (await loadDial()).dialClient(f, via);
}

/**
 * What a client command runs: parsing, loading the dial path, and a rehearsal of connecting and
 * calling (src/cli/warm.ts). The build runs it before storing the bundle's code cache
 * (src/cli/launch.ts), so that code is in it.
 */
export async function warm(): Promise<void> {
  quickParse(['peek', '/X0000000000000000', '-d', 'circuit://127.0.0.1:1/1/Q0000000000000000']);
  const dial = await loadDial();
  await dial.resolveUrl({ dial: 'circuit://127.0.0.1:1/1/Q0000000000000000' });
  await (await import('./warm')).warmConnect();
}

/** The modules a command loads to reach a server (the benchmark times this alone, bench/cli.ts). */
export function loadDial(): Promise<typeof import('./dial')> {
  return import('./dial');
}

/** The dial flags (dialOptions) by spelling, for quickParse. */
const DIAL_FLAGS: Record<string, keyof DialFlags> = { '-d': 'dial', '--dial': 'dial', '--discover': 'discover', '--hmac': 'hmac', '--socket': 'socket' };

/**
 * A client command whose every word after the name is a positional argument (not starting with
 * `-`), a dial flag with its value (`-d URL`, `--dial URL`, `--dial=URL`, value not starting
 * with `-`) or one of the command's own boolean flags (`-l`, `--long`), parsed as commander would;
 * undefined for anything else, which then goes to commander. argv is normalized, without node
 * and the script.
 */
export function quickParse(argv: string[]): { cmd: Command; args: string[]; flags: DialFlags & CommandFlags } | undefined {
  const cmd = COMMANDS.find((c) => c.name === argv[0]);
  if (!cmd) return undefined;
  const bools = new Map<string, keyof CommandFlags>();
  for (const [spec] of cmd.flags ?? []) {
    const names = spec.split(/,\s*/);
    const key = names[names.length - 1]!.replace(/^--/, '') as keyof CommandFlags;
    for (const n of names) bools.set(n, key);
  }
  const args: string[] = [];
  const flags: DialFlags & CommandFlags = {};
  for (let i = 1; i < argv.length; i++) {
    const a = argv[i]!;
    if (!a.startsWith('-')) {
      args.push(a);
      continue;
    }
    const eq = a.startsWith('--') ? a.indexOf('=') : -1;
    const name = eq > 0 ? a.slice(0, eq) : a;
    const dial = DIAL_FLAGS[name];
    if (dial) {
      const v = eq > 0 ? a.slice(eq + 1) : argv[++i];
      if (v === undefined || v.startsWith('-')) return undefined;
      flags[dial] = v;
      continue;
    }
    const b = bools.get(a);
    if (!b) return undefined;
    flags[b] = true;
  }
  return { cmd, args, flags };
}

/** Runs a client command and exits: 0 once its answer is written, 1 with one line on failure. */
async function runCommand(cmd: Command, args: string[], f: DialFlags & CommandFlags): Promise<never> {
  let client;
  try {
    client = await dialClient(f);
  } catch (e) {
    fail(e);
  }
  if (!cmd.args(args)) {
    await client.greeted().catch((e) => fail(e)); // a refused dial is said first
    fail(new Error(cmd.argsError));
  }
  try {
    await cmd.run(client, args, f);
    await client.greeted(); // the hello was answered (a command that made no call learns it here)
  } catch (e) {
    fail(e, cmd.op);
  }
  // Everything the command had to say is written (stdout to a pipe or file is synchronous on
  // Linux) and the server has answered every call. What is still queued for the server (a
  // recv's ack) is written before exiting; waiting for the server's end of the connection
  // gains nothing.
  await client.hangUp().catch(() => {});
  process.exit(0);
}

function dialOptions(c: Commander): Commander {
  return c
    .option('-d, --dial <url>', 'the circuit URL of the server to talk to')
    .option('--socket <path>', "a local server's control socket (also $CIRCUIT_SOCKET)")
    .option('--discover <mcast>', 'find a server by UDP multicast (also $CIRCUIT_DISCOVER)')
    .option('--hmac <file>', 'the key file (also $CIRCUIT_HMAC)');
}

export function program(): Commander {
  // Loaded here, not at the top: quickParse's commands never need it.
  // eslint-disable-next-line @typescript-eslint/no-var-requires
  const { Command: Commander } = require('commander') as typeof import('commander');
  const p = new Commander('circuit');
  p.version(VERSION, '-v, --version').description('circuit: processes, channels and more, anywhere in a cluster').showHelpAfterError(false);
  p.configureOutput({ writeErr: (s) => process.stderr.write(s.startsWith('error:') ? `circuit: ${s.slice(7)}` : s) });
  p.exitOverride((err) => {
    if (err.code === 'commander.helpDisplayed' || err.code === 'commander.version' || err.code === 'commander.help') process.exit(0);
    process.exit(err.code === 'commander.unknownCommand' ? 3 : 1);
  });

  p.command('start')
    .description('run a server (and mount the cluster at /circuit)')
    .option('-a, --addr <host:port>', 'open a TCP port here (default: none unless --if, -j, --discover or a key ask for the network; then 127.0.0.1:0, or 0.0.0.0:0 with a key)')
    .option('--if <iface>', "bind the interface's first IPv4 address (else IPv6) on -a's port or a free one")
    .option('--socket <path>', 'the control socket (default /run/circuit/ID.sock for root, else $XDG_RUNTIME_DIR/circuit/ID.sock)')
    .option('--group <name>', 'let this group use the control socket too')
    .option('--var <dir>', 'var folder: lock and operations log (default $TMPDIR/circuit-<worker>-P<pid>)')
    .option('--mount <dir>', 'where to mount the cluster', '/circuit')
    .option('--no-mount', 'do not mount the cluster')
    .option('--allow-other', 'let other users look through the mount (list and read), not act')
    .option('--allow-uid <uids>', 'with --allow-other: these uids (comma-separated) may act too')
    .option('--allow-group <groups>', 'with --allow-other: members of these groups may act too')
    .option('--allow-unsafe-mount', 'mount even with a fuse-native build whose blocked readers cannot be interrupted')
    .option('-j, --join <target>', 'join the cluster of the server at a circuit URL, HOST:PORT or NAME:PORT (every address of the name is tried); repeatable', (v: string, acc: string[] = []) => [...acc, v])
    .option('--join-timeout <ms>', 'fail the start if the join does not succeed in time')
    .option('--discover <mcast>', 'find and announce servers by UDP multicast (also $CIRCUIT_DISCOVER)')
    .option('--hmac <file>', 'the key file (also $CIRCUIT_HMAC)')
    .option('--docker', 'enable docker elements')
    .option('--grace <ms>', 'time between SIGTERM and SIGKILL for processes at shutdown', '3000')
    .option('--idle-close <ms>', 'close a connection to another server unused this long (0: never)', '60000')
    .action(async (f: StartFlags) => {
      const { start } = await import('./start'); // the daemon's modules load only for start
      await start(f).catch((e) => fail(e));
    });

  dialOptions(p.command('mount <dir>'))
    .description('mount the cluster at DIR, through a server, hosting nothing')
    .option('--allow-other', 'let other users look through the mount (list and read), not act')
    .option('--allow-uid <uids>', 'with --allow-other: these uids (comma-separated) may act too')
    .option('--allow-group <groups>', 'with --allow-other: members of these groups may act too')
    .option('--allow-unsafe-mount', 'mount even with a fuse-native build whose blocked readers cannot be interrupted')
    .action(async (dir: string, f: DialFlags & { allowOther?: boolean; allowUid?: string; allowGroup?: string; allowUnsafeMount?: boolean }) => {
      try {
        const { mountOnly } = await import('./start');
        await mountOnly(dir, await dialClient(f, 'mount'), f);
      } catch (e) {
        fail(e);
      }
    });

  p.command('keygen')
    .description('print a new key for --hmac (base64), or write it to a new 0600 file')
    .option('-o, --output <file>', 'create FILE (mode 0600) holding the key; never overwrites')
    .option('-f, --force', 'with -o: replace an existing FILE')
    .action(async (f: { output?: string; force?: boolean }) => {
      try {
        const { generateKey, writeKeyFile } = await import('../cluster/keys');
        if (f.output) writeKeyFile(f.output, f.force);
        else process.stdout.write(generateKey() + '\n');
      } catch (e) {
        fail(e);
      }
    });

  p.command('completion <shell>')
    .description('print a bash or zsh script completing commands, flags and anchor paths')
    .action(async (shell: string) => {
      try {
        const { completionScript } = await import('./completion');
        process.stdout.write(completionScript(shell, p));
      } catch (e) {
        fail(e);
      }
    });

  for (const cmd of COMMANDS) {
    const c = dialOptions(p.command(cmd.name)).description(cmd.summary).usage(cmd.usage).argument('[args...]');
    for (const [flags, desc] of cmd.flags ?? []) c.option(flags, desc);
    c.action((args: string[], f: DialFlags & CommandFlags) => runCommand(cmd, args, f));
  }

  p.on('command:*', (ops: string[]) => {
    process.stderr.write(`circuit: No help topic for '${ops[0]}'\n`);
    process.exit(3);
  });
  return p;
}

export function main(argv = process.argv): void {
  process.stdout.on('error', (e: NodeJS.ErrnoException) => process.exit(e.code === 'EPIPE' ? 0 : 1));
  const args = normalizeArgv(argv);
  const quick = quickParse(args.slice(2));
  if (quick) {
    runCommand(quick.cmd, quick.args, quick.flags).catch((e) => fail(e));
    return;
  }
  program()
    .parseAsync(args)
    .catch((e) => fail(e));
}

if (require.main === module) main();
