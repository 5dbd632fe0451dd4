import t from 'tap';
import { spawnSync } from 'node:child_process';
import { builtinModules } from 'node:module';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { BUNDLE } from '../../src/cli/launch';
import { cleanEnv, MAIN } from '../helpers/daemon';

/**
 * bin/circuit runs the one-file bundle that `npm run build` makes (dist/circuit.js) with the V8
 * code cache made beside it, and never runs a cache made for other code.
 */
const LAUNCH = path.resolve(__dirname, '../../src/cli/launch.js');

/** In a node without the test runner's hooks: whether loadBundle(file) used a cache, and the bundle's exports. */
function load(file: string): { cached: boolean; exports: string[] } {
  const code = `const r = require(${JSON.stringify(LAUNCH)}).loadBundle(${JSON.stringify(file)}); console.log(JSON.stringify({ cached: r.cached, exports: Object.keys(r.exports) }))`;
  const r = spawnSync('/usr/bin/env', ['-i', ...Object.entries(cleanEnv()).map(([k, v]) => `${k}=${v}`), process.execPath, '-e', code], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(r.stderr);
  return JSON.parse(r.stdout) as { cached: boolean; exports: string[] };
}

t.test('bundle: the build made it and its cache, and the cache is used', async (t) => {
  t.ok(fs.existsSync(BUNDLE), 'dist/circuit.js');
  t.ok(fs.existsSync(BUNDLE + '.cache'), 'dist/circuit.js.cache');
  const r = load(BUNDLE);
  t.equal(r.cached, true, 'V8 accepted the cache');
  t.ok(r.exports.includes('main'), 'the bundle exports main');
  t.match(fs.readFileSync(MAIN, 'utf8'), /launch/, 'bin/circuit goes through launch');
});

t.test('bundle: a cache made for another version of the file is not used', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'circuit-bundle-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const copy = path.join(dir, 'circuit.js');
  fs.copyFileSync(BUNDLE, copy);
  fs.copyFileSync(BUNDLE + '.cache', copy + '.cache');
  t.equal(load(copy).cached, true, 'a copy of the same file uses it');
  const source = fs.readFileSync(BUNDLE, 'utf8');
  t.match(source, /^\/\/ circuit-build [0-9a-f]{16}\n/, 'the bundle starts with its build id');
  fs.writeFileSync(copy, source.replace(/^(\/\/ circuit-build )[0-9a-f]{16}/, '$10123456789abcdef'));
  t.equal(load(copy).cached, false, 'another build of the same length does not, and still runs');
  fs.writeFileSync(copy, source + ' ');
  t.equal(load(copy).cached, false, 'nor an edited file with the same build id');
  fs.writeFileSync(copy, source);
  const cache = fs.readFileSync(BUNDLE + '.cache');
  fs.writeFileSync(copy + '.cache', Buffer.concat([cache.subarray(0, cache.indexOf(10, cache.indexOf(10) + 1) + 1), Buffer.from('garbage')]));
  t.equal(load(copy).cached, false, 'a broken cache is ignored');
  fs.rmSync(copy + '.cache');
  t.equal(load(copy).cached, false, 'no cache: compiled from source');
});

t.test("bundle: a short command does not load msgpackr's native decoder; start and mount do", async (t) => {
  const probe = (command: string, env: Record<string, string> = {}) => {
    const code =
      `const L = require(${JSON.stringify(LAUNCH)}); L.withoutNativeDecoder(${JSON.stringify(command)}, () => L.loadBundle());` +
      `console.log(JSON.stringify({ extract: Object.keys(require.cache).some((k) => k.includes('msgpackr-extract')), env: process.env.MSGPACKR_NATIVE_ACCELERATION_DISABLED ?? null }))`;
    const vars = { ...cleanEnv(), ...env };
    const r = spawnSync('/usr/bin/env', ['-i', ...Object.entries(vars).map(([k, v]) => `${k}=${v}`), process.execPath, '-e', code], { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(r.stderr);
    return JSON.parse(r.stdout) as { extract: boolean; env: string | null };
  };
  t.same(probe('peek'), { extract: false, env: null }, 'peek: not loaded, and the switch is gone again (nothing started inherits it)');
  t.same(probe('ls'), { extract: false, env: null }, 'ls: not loaded');
  t.same(probe('start'), { extract: true, env: null }, 'start: loaded');
  t.same(probe('mount'), { extract: true, env: null }, 'mount: loaded');
  t.same(probe('start', { MSGPACKR_NATIVE_ACCELERATION_DISABLED: 'true' }), { extract: false, env: 'true' }, "the user's own setting is kept");
  t.same(probe('peek', { MSGPACKR_NATIVE_ACCELERATION_DISABLED: 'false' }), { extract: true, env: 'false' }, "the user's own setting is kept");
});

t.test("bundle: node's own modules are required as they are, not copied into namespace objects", async (t) => {
  // `import * as fs from 'node:fs'` makes esbuild copy the module into a fresh object with a
  // getter per property, at every start: with a dozen of them the young generation filled while
  // the CLI loaded and a 3-4 ms scavenge ran on the way to the first answer (BENCHMARKS.md, #7).
  // src/ writes `import fs = require('node:fs')`, which the bundle keeps as a plain require.
  const source = fs.readFileSync(BUNDLE, 'utf8');
  const wrapped = [...source.matchAll(/__toESM\(require\("([^"]+)"\)/g)].map((m) => m[1]!);
  const builtins = new Set(builtinModules.flatMap((m) => [m, `node:${m}`]));
  t.same(wrapped.filter((m) => builtins.has(m)), [], 'no built-in module is wrapped');
  t.ok(/require\("node:fs"\)/.test(source), 'the check looks at real requires (node:fs is required)');
});
