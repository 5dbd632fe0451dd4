import { Command as Commander } from 'commander';
import { COMMANDS, type CommandFlags } from './commands';
import type { DialFlags } from './dial';
import type { StartFlags } from './start';
import { VERSION } from '../kit/version';
import { toCircuitError, type CircuitError } from '../kit/errors';

/**
 * bin/circuit: wires the commands to commander. Errors print one line, `circuit: <message>`,
 * and exit 1 (unknown commands exit 3, as the original). The original's single-dash long flags
 * (-dial, -addr, …) are accepted.
 */
const LONG_FLAGS = ['dial', 'discover', 'hmac', 'addr', 'join', 'docker', 'var', 'mount', 'scrub', 'long', 'depth', 'de', 'if', 'no-mount', 'allow-other', 'join-timeout', 'allow-unsafe-mount'];

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

/**
 * Loads the client side only when a command needs it. A short-lived client gains nothing from
 * msgpackr's native decoder and pays for loading it, so it is switched off here (not for start).
 */
async function dialClient(f: DialFlags) {
  process.env.MSGPACKR_NATIVE_ACCELERATION_DISABLED ??= 'true';
  return (await import('./dial')).dialClient(f);
}

function dialOptions(c: Commander): Commander {
  return c
    .option('-d, --dial <url>', 'the circuit URL of the server to talk to')
    .option('--discover <mcast>', 'find a server by UDP multicast (also $CIRCUIT_DISCOVER)')
    .option('--hmac <file>', 'the key file (also $CIRCUIT_HMAC)');
}

export function program(): Commander {
  const p = new Commander('circuit');
  p.version(VERSION, '-v, --version').description('circuit: processes, channels and more, anywhere in a cluster').showHelpAfterError(false);
  p.configureOutput({ writeErr: (s) => process.stderr.write(s.startsWith('error:') ? `circuit: ${s.slice(7)}` : s) });
  p.exitOverride((err) => {
    if (err.code === 'commander.helpDisplayed' || err.code === 'commander.version' || err.code === 'commander.help') process.exit(0);
    process.exit(err.code === 'commander.unknownCommand' ? 3 : 1);
  });

  p.command('start')
    .description('run a server (and mount the cluster at /circuit)')
    .option('-a, --addr <host:port>', 'address to bind (default 127.0.0.1:0, or 0.0.0.0:0 with a key)')
    .option('--if <iface>', "bind the interface's first IPv4 address (else IPv6) on -a's port or a free one")
    .option('--var <dir>', 'var folder: lock and operations log (default $TMPDIR/circuit-<worker>-P<pid>)')
    .option('--mount <dir>', 'where to mount the cluster', '/circuit')
    .option('--no-mount', 'do not mount the cluster')
    .option('--allow-other', 'let other users reach the mount (it carries the full power of the cluster)')
    .option('--allow-unsafe-mount', 'mount even with a fuse-native build whose blocked readers cannot be interrupted')
    .option('-j, --join <target>', 'join the cluster of the server at a circuit URL, HOST:PORT or NAME:PORT (every address of the name is tried); repeatable', (v: string, acc: string[] = []) => [...acc, v])
    .option('--join-timeout <ms>', 'fail the start if the join does not succeed in time')
    .option('--discover <mcast>', 'find and announce servers by UDP multicast (also $CIRCUIT_DISCOVER)')
    .option('--hmac <file>', 'the key file (also $CIRCUIT_HMAC)')
    .option('--docker', 'enable docker elements')
    .option('--grace <ms>', 'time between SIGTERM and SIGKILL for processes at shutdown', '3000')
    .action(async (f: StartFlags) => {
      const { start } = await import('./start'); // the daemon's modules load only for start
      await start(f).catch((e) => fail(e));
    });

  dialOptions(p.command('mount <dir>'))
    .description('mount the cluster at DIR, through a server, hosting nothing')
    .option('--allow-other', 'let other users reach the mount')
    .option('--allow-unsafe-mount', 'mount even with a fuse-native build whose blocked readers cannot be interrupted')
    .action(async (dir: string, f: DialFlags & { allowOther?: boolean; allowUnsafeMount?: boolean }) => {
      try {
        const { mountOnly } = await import('./start');
        await mountOnly(dir, await dialClient(f), Boolean(f.allowOther), f.allowUnsafeMount);
      } catch (e) {
        fail(e);
      }
    });

  p.command('keygen')
    .description('print a new key for --hmac (base64)')
    .action(async () => {
      try {
        const { generateKey } = await import('../cluster/keys');
        process.stdout.write(generateKey() + '\n');
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
    c.action(async (args: string[], f: DialFlags & CommandFlags) => {
      let client;
      try {
        client = await dialClient(f);
      } catch (e) {
        fail(e);
      }
      if (!cmd.args(args)) fail(new Error(cmd.argsError));
      try {
        await cmd.run(client, args, f);
      } catch (e) {
        fail(e, cmd.op);
      }
      await client.disconnect().catch(() => {});
      process.exit(0);
    });
  }

  p.on('command:*', (ops: string[]) => {
    process.stderr.write(`circuit: No help topic for '${ops[0]}'\n`);
    process.exit(3);
  });
  return p;
}

export function main(argv = process.argv): void {
  process.stdout.on('error', (e: NodeJS.ErrnoException) => process.exit(e.code === 'EPIPE' ? 0 : 1));
  program()
    .parseAsync(normalizeArgv(argv))
    .catch((e) => fail(e));
}

if (require.main === module) main();
