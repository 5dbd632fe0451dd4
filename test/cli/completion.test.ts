import t from 'tap';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { startServer, cli, cleanEnv, MAIN } from '../helpers/daemon';
import { tmpDir } from '../helpers/tmp';

/**
 * `circuit completion bash|zsh`, loaded into a real bash: `complete -p` shows it registered, and
 * calling its function as bash's programmable completion does (COMP_WORDS, COMP_CWORD) gives
 * command names, the command's flags, and anchor paths read from a live server.
 */
const ROOT = path.resolve(__dirname, '../../..');

t.test('completion bash: commands, flags and anchors from the server', async (t) => {
  const srv = await startServer();
  t.teardown(() => srv.stop());
  t.equal((await cli(srv.url, ['mkchan', `/${srv.id}/comp/ch`, '1'])).code, 0);
  t.equal((await cli(srv.url, ['mkchan', `/${srv.id}/cold`, '1'])).code, 0);
  const bin = tmpDir('circuit-completion-');
  fs.symlinkSync(path.join(ROOT, 'bin/circuit'), path.join(bin, 'circuit'));
  const complete = (words: string[]) => {
    const sh = [
      'source <(circuit completion bash)', // as docs/cli.md says
      'complete -p circuit',
      `COMP_WORDS=(${words.map((w) => `'${w}'`).join(' ')})`,
      'COMP_CWORD=$((${#COMP_WORDS[@]} - 1))',
      'COMPREPLY=()',
      '_circuit',
      'printf "%s\\n" "${COMPREPLY[@]}"',
    ].join('\n');
    const out = execFileSync('bash', ['-c', sh], { env: cleanEnv({ PATH: `${bin}:${process.env.PATH}` }) }).toString();
    const [reg, ...rest] = out.split('\n');
    t.equal(reg, 'complete -o default -F _circuit circuit', 'registered for circuit');
    return rest.filter(Boolean).sort();
  };
  t.same(complete(['circuit', 'mkc']), ['mkchan'], 'a command');
  t.same(complete(['circuit', 'st']), ['start', 'stderr', 'stdin', 'stdout', 'stk', 'stop'], 'commands sharing a prefix');
  t.same(complete(['circuit', 'start', '--allow-']), ['--allow-group', '--allow-other', '--allow-uid', '--allow-unsafe-mount'], "start's flags");
  t.same(complete(['circuit', 'ls', '--d']), ['--de', '--depth', '--dial', '--discover'], "ls's flags");
  t.same(complete(['circuit', 'completion', '']), ['bash', 'zsh'], 'the shells');
  const d = ['-d', srv.url];
  t.same(complete(['circuit', 'peek', ...d, '/X']), [`/${srv.id}/`], 'the servers, from the server');
  t.same(complete(['circuit', 'peek', ...d, `/${srv.id}/co`]), [`/${srv.id}/cold/`, `/${srv.id}/comp/`], 'anchors below a server');
  t.same(complete(['circuit', 'recv', ...d, `/${srv.id}/comp/`]), [`/${srv.id}/comp/ch/`], 'anchors below an anchor');
  t.same(complete(['circuit', 'peek', '-d', 'circuit://127.0.0.1:1/1/Q0000000000000000', '/X']), [], 'no server: no anchors, no noise');
});

t.test('completion zsh: the same function through bashcompinit; an unknown shell is an error', async (t) => {
  const zsh = execFileSync(process.execPath, [MAIN, 'completion', 'zsh']).toString();
  t.match(zsh, /bashcompinit/);
  t.match(zsh, /^complete -o default -F _circuit circuit$/m);
  let hasZsh = true;
  try {
    execFileSync('zsh', ['-c', 'true']);
  } catch {
    hasZsh = false;
  }
  if (hasZsh) execFileSync('zsh', ['-n', '-c', zsh]);
  t.pass(hasZsh ? 'zsh parses it' : 'zsh is not installed: its syntax check is skipped');
  const r = await cli(null, ['completion', 'fish']);
  t.equal(r.code, 1);
  t.equal(r.stderr, 'circuit: completion: unknown shell "fish" (want bash or zsh)\n');
});
