import t from 'tap';
import { normalizeArgv, program, quickParse } from '../../src/cli/main';

/**
 * The CLI parses plain client commands itself (quickParse) to skip loading commander; whatever it
 * accepts must mean exactly what commander makes of it, and everything else must go to commander.
 */
function viaCommander(argv: string[]): { name: string; args: string[]; flags: Record<string, unknown> } {
  const p = program();
  let got: { name: string; args: string[]; flags: Record<string, unknown> } | undefined;
  for (const c of p.commands) {
    c.action((args: string[], flags: Record<string, unknown>) => {
      got = { name: c.name(), args, flags: { ...flags } };
    });
  }
  p.parse(['node', 'circuit', ...argv]);
  if (!got) throw new Error(`commander ran no command for ${argv.join(' ')}`);
  return got;
}

const URL = 'circuit://127.0.0.1:9/1/Q0123456789abcdef';

t.test('quickParse: the plain forms parse as commander parses them', async (t) => {
  const cases: string[][] = [
    ['peek', '/X0123456789abcdef', '-d', URL],
    ['peek', '-d', URL, '/X0123456789abcdef'],
    ['peek', '/X0123456789abcdef', '--dial', URL],
    ['peek', '/X0123456789abcdef', `--dial=${URL}`],
    ['peek', '/X0123456789abcdef', '-dial', URL],
    ['ls', '/'],
    ['ls', '-l', '/...', '-d', URL],
    ['ls', '--long', '--de', '/a/...'],
    ['ls', '--depth', '/a/...', '--hmac', '/k', '--discover', '228.8.8.8:8822'],
    ['ls', '/', 'extra', '-d', URL, 'more'],
    ['mkproc', '--scrub', '/X/a'],
    ['mkdkr', '/X/a', '--scrub'],
    ['mkchan', '/X/c', '3'],
    ['peek'],
    ['send', '/X/c', '-d', URL, '-d', 'circuit://127.0.0.1:10/1/Q0123456789abcdef'],
    ['signal', 'TERM', '/X/p'],
    ['mk@join', '/X/j'],
    ['waitall'],
    ['set', '/X/d', 'a.example. A 1.2.3.4', '-d', URL],
    ['stdout', ''],
  ];
  for (const argv of cases) {
    const norm = normalizeArgv(['node', 'circuit', ...argv]).slice(2);
    const q = quickParse(norm);
    t.ok(q, `quickParse takes ${JSON.stringify(argv)}`);
    if (!q) continue;
    const c = viaCommander(norm);
    t.same({ name: q.cmd.name, args: q.args, flags: q.flags }, c, JSON.stringify(argv));
  }
});

t.test('quickParse: everything else is left to commander', async (t) => {
  const cases: string[][] = [
    [],
    ['start'],
    ['mount', '/mnt'],
    ['keygen'],
    ['nosuch', '/'],
    ['-v'],
    ['--help'],
    ['peek', '--help'],
    ['peek', '-h'],
    ['ls', '--', '-l'],
    ['peek', '/X', '-d'],
    ['peek', '/X', '-d', '-l'],
    ['peek', '/X', `-d${URL}`],
    ['peek', '/X', '--long'],
    ['ls', '--scrub', '/'],
    ['ls', '--long=1', '/'],
    ['signal', '-9', '/X/p'],
    ['send', '-'],
    ['ls', '-ld', '/'],
  ];
  for (const argv of cases) t.equal(quickParse(normalizeArgv(['node', 'circuit', ...argv]).slice(2)), undefined, JSON.stringify(argv));
});
