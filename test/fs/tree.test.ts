import t from 'tap';
import { exitStatus, filesOf, resolve } from '../../src/fs/tree';

t.test('tree: resolve maps paths to nodes', async (t) => {
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

t.test('tree: every kind declares its files, an error file last, unique names', async (t) => {
  const want: Record<string, string[]> = {
    server: ['peek', 'members', 'ctl', 'log'],
    chan: ['cap', 'send', 'recv', 'close', 'peek'],
    proc: ['cmd', 'stdin', 'stdout', 'stderr', 'wait', 'exit', 'signal', 'peek'],
    docker: ['cmd', 'stdin', 'stdout', 'stderr', 'wait', 'exit', 'signal', 'peek'],
    dns: ['address', 'records', 'unset', 'peek'],
    '@join': ['recv', 'events', 'peek'],
    '@leave': ['recv', 'events', 'peek'],
  };
  for (const k of Object.keys(want)) {
    const names = filesOf(k).map((f) => f.name);
    t.same(names, [...want[k]!, 'error'], k);
    t.equal(new Set(names).size, names.length, `${k}: unique`);
  }
  const modes = Object.fromEntries(filesOf('proc').map((f) => [f.name, f.mode]));
  t.same(modes, { cmd: 'rw', stdin: 'w', stdout: 'r', stderr: 'r', wait: 'r', exit: 'r', signal: 'w', peek: 'r', error: 'r' });
});

t.test('tree: exit status is the code, or 128+n for signal n', async (t) => {
  t.equal(exitStatus({ ExitCode: 3, Signal: null }), '3\n');
  t.equal(exitStatus({ ExitCode: 0 }), '0\n');
  t.equal(exitStatus({ ExitCode: -1, Signal: 'SIGKILL' }), '137\n');
  t.equal(exitStatus({ ExitCode: -1, Signal: 'term' }), '143\n');
  t.equal(exitStatus({ Signal: 2 }), '130\n');
  t.equal(exitStatus(null), '-1\n');
});
