import t from 'tap';
import { ROUTES } from '../../src/fs/routes';
import { exitStatus } from '../../src/fs/kinds/proc';
import { containerExit } from '../../src/fs/kinds/docker';
import { helpText } from '../../src/fs/files/element';

const resolve = (p: string) => ROUTES.resolve(p);
const filesOf = (k: string) => ROUTES.filesOf(k);

t.test('routes: resolve maps paths to nodes', async (t) => {
  t.same(resolve('/'), { type: 'root' });
  t.same(resolve('/.self'), { type: 'self' });
  t.same(resolve('/X1'), { type: 'anchor', anchor: '/X1' });
  t.same(resolve('/X1/hi/charlie'), { type: 'anchor', anchor: '/X1/hi/charlie' });
  t.same(resolve('/X1/hi/chan'), { type: 'element', anchor: '/X1/hi', kind: 'chan' });
  t.same(resolve('/X1/server'), { type: 'element', anchor: '/X1', kind: 'server' });
  t.same(resolve('/X1/j/@join'), { type: 'element', anchor: '/X1/j', kind: '@join' });
  const f = resolve('/X1/hi/chan/recv');
  t.equal(f.type, 'file');
  if (f.type === 'file') t.match(f, { anchor: '/X1/hi', kind: 'chan', file: { name: 'recv', mode: 'r', blocking: true } });
  t.same(resolve('/X1/hi/chan/nope'), { type: 'none' });
  t.same(resolve('/X1/hi/chan/recv/deeper'), { type: 'none' });
  t.same(resolve('/chan'), { type: 'anchor', anchor: '/chan' }, 'a kind name at the top is a server name, not an element');
});

t.test('routes: every kind declares its files, an error file last, unique names', async (t) => {
  const want: Record<string, string[]> = {
    server: ['peek', 'members', 'ctl', 'log', 'stk'],
    chan: ['cap', 'send', 'trysend', 'recv', 'tryrecv', 'close', 'peek'],
    proc: ['cmd', 'stdin', 'stdout', 'stderr', 'env', 'wait', 'exit', 'signal', 'peek'],
    docker: ['cmd', 'stdin', 'stdout', 'stderr', 'env', 'wait', 'exit', 'signal', 'peek'],
    dns: ['address', 'records', 'unset', 'peek'],
    '@join': ['recv', 'tryrecv', 'events', 'peek'],
    '@leave': ['recv', 'tryrecv', 'events', 'peek'],
  };
  for (const k of Object.keys(want)) {
    const names = filesOf(k).map((f) => f.name);
    t.same(names, [...want[k]!, 'help', 'error'], k);
    t.ok(filesOf(k).every((f) => f.help), `${k}: every file has a help line`);
    t.equal(new Set(names).size, names.length, `${k}: unique`);
  }
  const modes = Object.fromEntries(filesOf('proc').map((f) => [f.name, f.mode]));
  t.same(modes, { cmd: 'rw', stdin: 'w', stdout: 'r', stderr: 'r', env: 'r', wait: 'r', exit: 'r', signal: 'w', peek: 'r', help: 'r', error: 'r' });
});

t.test('routes: exit status is the code, or 128+n for signal n', async (t) => {
  t.equal(exitStatus({ ExitCode: 3, Signal: null }), '3\n');
  t.equal(exitStatus({ ExitCode: 0 }), '0\n');
  t.equal(exitStatus({ ExitCode: -1, Signal: 'SIGKILL' }), '137\n');
  t.equal(exitStatus({ ExitCode: -1, Signal: 'term' }), '143\n');
  t.equal(exitStatus({ Signal: 2 }), '130\n');
  t.equal(exitStatus(null), '-1\n');
  t.equal(containerExit({ State: { ExitCode: 143 } }), '143\n', 'a container\'s is in its inspection');
  t.equal(containerExit(null), '-1\n');
});

t.test('routes: help is one line per file of the table, so it cannot drift from it', async (t) => {
  const files = filesOf('chan');
  const lines = helpText(files).split('\n').filter(Boolean);
  t.same(lines.map((l) => l.split(/\s+/)[0]), files.map((f) => f.name));
  t.match(lines.find((l) => l.startsWith('trysend')), /^trysend\s+w\s+each write is one message, or fails with EAGAIN/);
  const root = resolve('/help');
  t.match(root, { type: 'file', anchor: '/', file: { name: 'help', mode: 'r' } });
});
