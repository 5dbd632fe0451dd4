#!/usr/bin/env node
// Part of `npm run build`, after tsc: bundles the CLI (src/cli/main.ts and all it reaches) into
// dist/circuit.js with esbuild, then has a fresh node make V8's code cache for it
// (dist/circuit.js.cache). bin/circuit runs the bundle through dist/src/cli/launch.js; see there
// for why. Packages with native parts or much code that only some commands need stay outside
// the bundle and load from node_modules when used. Without esbuild (a tarball installed without
// dev dependencies) it says so and leaves no bundle: the CLI then runs the tsc output.
'use strict';
const path = require('node:path');
const { execFileSync } = require('node:child_process');

const root = path.resolve(__dirname, '..');
const out = path.join(root, 'dist', 'circuit.js');
let esbuild;
try {
  esbuild = require('esbuild');
} catch {
  process.stderr.write('bundle: esbuild is not installed; bin/circuit will run dist/src/cli/main.js (slower start)\n');
  process.exit(0);
}
esbuild.buildSync({
  entryPoints: [path.join(root, 'src/cli/main.ts')],
  outfile: out,
  bundle: true,
  platform: 'node',
  target: 'node20',
  format: 'cjs',
  sourcemap: true,
  // Less to read and decode at every start (BENCHMARKS.md, #7); identifiers are kept, so stack
  // traces still name functions, and the source map points into src/.
  minifyWhitespace: true,
  minifySyntax: true,
  logLevel: 'warning',
  // The build id that ties dist/circuit.js.cache to this very file (see launch.ts).
  banner: { js: `// circuit-build ${require('node:crypto').randomBytes(8).toString('hex')}` },
  // Native add-ons (and the loader that finds them), and packages only the daemon's docker and
  // dns elements use: resolved from node_modules at run time.
  external: ['fuse-native', 'node-gyp-build', 'msgpackr-extract', 'dockerode', 'dns2'],
});
const launch = path.join(root, 'dist/src/cli/launch.js');
execFileSync(process.execPath, ['-e', `require(${JSON.stringify(launch)}).writeCache(${JSON.stringify(out)}).catch((e) => { console.error(e); process.exit(1); })`], { stdio: 'inherit' });
