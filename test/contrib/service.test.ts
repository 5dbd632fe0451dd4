import t from 'tap';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { tmpDir } from '../helpers/tmp';

/**
 * contrib/circuit.service passes `systemd-analyze verify` without a word (unknown keys and bad
 * values are only warnings there, so any output fails the test), with ExecStart pointed at this
 * checkout's bin/circuit; it restarts on failure, lets the daemon stop its own processes before
 * systemd kills the rest, and keeps its state in /var/lib/circuit and its socket in /run/circuit.
 * contrib/circuit.env is valid shell for the variables the unit reads.
 */
const ROOT = path.resolve(__dirname, '../../..');
const unit = fs.readFileSync(path.join(ROOT, 'contrib/circuit.service'), 'utf8');
const has = spawnSync('systemd-analyze', ['--version']).status === 0;

t.test('circuit.service: the settings the docs promise', async (t) => {
  const set = (k: string) => unit.split('\n').filter((l) => l.startsWith(k + '=')).map((l) => l.slice(k.length + 1));
  t.same(set('Type'), ['simple']);
  t.same(set('Restart'), ['on-failure']);
  t.same(set('KillMode'), ['mixed']);
  t.same(set('StateDirectory'), ['circuit']);
  t.same(set('RuntimeDirectory'), ['circuit']);
  t.match(set('ExecStart')[0], /^\/usr\/local\/bin\/circuit start --var \/var\/lib\/circuit --mount \$\{CIRCUIT_MOUNT\} \$CIRCUIT_FLAGS$/);
  const env = spawnSync('bash', ['-c', `set -eu; source "$1"; printf '%s|%s' "$CIRCUIT_MOUNT" "$CIRCUIT_FLAGS"`, 'x', path.join(ROOT, 'contrib/circuit.env')], { encoding: 'utf8' });
  t.equal(env.status, 0, env.stderr);
  t.equal(env.stdout, '/circuit|', 'circuit.env sets the mount and empty extra flags');
});

t.test('circuit.service: systemd-analyze verify is silent', { skip: has ? false : 'systemd-analyze is not installed (Debian package systemd; scripts/setup.sh installs it)' }, async (t) => {
  const dir = tmpDir('circuit-unit-');
  const file = path.join(dir, 'circuit.service');
  fs.writeFileSync(file, unit.replace(/\/usr\/local\/bin\/circuit/g, path.join(ROOT, 'bin/circuit')));
  const r = spawnSync('systemd-analyze', ['verify', file], { encoding: 'utf8' });
  t.equal(r.status, 0);
  t.equal((r.stdout + r.stderr).trim(), '', 'no warnings');
  fs.writeFileSync(file, unit.replace('KillMode=mixed', 'KillMode=bogus').replace(/\/usr\/local\/bin\/circuit/g, path.join(ROOT, 'bin/circuit')));
  t.match(spawnSync('systemd-analyze', ['verify', file], { encoding: 'utf8' }).stderr, /kill mode/, 'a broken unit would be noticed');
});
