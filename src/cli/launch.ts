import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { Script } from 'node:vm';
import type * as NodeModule from 'node:module';

/**
 * createRequire, from the module system's own class: loading the public `node:module` would
 * compile it and the ESM loader parts it reaches (about a millisecond of every command's
 * start-up). Named imports above, too: `import * as` makes tsc copy each module's namespace.
 * Elsewhere in src/ node's modules are imported as `import fs = require('node:fs')`, which tsc and
 * esbuild both keep as a plain require: `import * as` would make the bundle copy each one into a
 * namespace object at every start (test/cli/bundle.test.ts says why that matters).
 */
const createRequire = (module.constructor as unknown as typeof NodeModule).createRequire;

/**
 * How bin/circuit starts the CLI quickly. `npm run build` bundles src/cli/main.ts and everything
 * it reaches into one file, dist/circuit.js (scripts/bundle.js, with esbuild), and stores V8's
 * compiled code for that file beside it, dist/circuit.js.cache. Loading one file with its code
 * cache skips resolving and reading some hundred modules and parsing half a megabyte of
 * JavaScript, most of a short command's start-up (BENCHMARKS.md, #7). Native and heavy packages
 * (fuse-native, dockerode, dns2) stay outside the bundle and load from node_modules when a
 * command needs them.
 *
 * Without a bundle (a build without esbuild, e.g. from a tarball installed without its dev
 * dependencies) the CLI runs from dist/src/cli/main.js, as before; without a usable cache (a
 * different node, other V8 flags) the bundle is compiled from source. Both only cost time.
 */

/** Where the build puts the bundle; the cache is BUNDLE + '.cache'. */
export const BUNDLE = resolve(__dirname, '../../circuit.js');

type Main = { main(argv?: string[]): void };

/**
 * The build stamps the bundle's first line with a random build id (`// circuit-build ID`), and
 * the cache file starts with the same line and the bundle's length, so a cache is used only
 * with the very file it was made for: V8 itself checks only the source's length. (Not the
 * mtime: npm pack sets every file's to one date.)
 */
function header(source: string): Buffer | undefined {
  const m = /^\/\/ circuit-build [0-9a-f]+\n/.exec(source);
  return m ? Buffer.from(`${m[0]}${source.length}\n`) : undefined;
}

export interface Loaded {
  exports: Main & Record<string, unknown>;
  script: Script;
  /** Whether a cache was found for this very bundle and V8 accepted it. */
  cached: boolean;
}

/** Compiles and runs the bundle as a CommonJS module (with its code cache when there is one for it). */
export function loadBundle(file = BUNDLE, useCache = true): Loaded {
  const source = readFileSync(file, 'utf8');
  const head = header(source);
  let cachedData: Buffer | undefined;
  if (useCache && head) {
    try {
      const c = readFileSync(file + '.cache');
      if (c.subarray(0, head.length).equals(head)) cachedData = c.subarray(head.length);
    } catch {
      // no cache: compile from source
    }
  }
  const script = new Script(`(function (exports, require, module, __filename, __dirname) {${source}\n})`, { filename: file, cachedData });
  const fn = script.runInThisContext() as (...a: unknown[]) => void;
  const mod = { exports: {} as Main & Record<string, unknown>, filename: file, id: file, loaded: false };
  fn.call(mod.exports, mod.exports, createRequire(file), mod, file, dirname(file));
  mod.loaded = true;
  return { exports: mod.exports, script, cached: cachedData !== undefined && !script.cachedDataRejected };
}

/**
 * Makes the cache (run by scripts/bundle.js in a fresh node, so V8's flags are node's defaults):
 * the code V8 compiled while the bundle's top level and its warm() ran, which is what a client
 * command compiles before it connects. Resolves with the cache's size.
 */
export async function writeCache(file = BUNDLE): Promise<number> {
  const { script, exports } = loadBundle(file, false);
  if (typeof exports.warm === 'function') await (exports.warm as () => Promise<void>)();
  const head = header(readFileSync(file, 'utf8'));
  if (!head) throw new Error(`${file} has no build id line`);
  const data = Buffer.concat([head, script.createCachedData()]);
  writeFileSync(file + '.cache', data);
  return data.length;
}

/** The commands that run for long and keep msgpackr's native decoder (see withoutNativeDecoder). */
const LONG_RUNNING = new Set(['start', 'mount']);

/**
 * msgpackr loads its native string decoder (the msgpackr-extract add-on, found through
 * node-gyp-build, which also loads child_process and more to tell musl from glibc) when its
 * module first runs: about 9 ms of a short command's start-up, for nothing a short command
 * decodes. Every command module reaches msgpackr statically, so it runs while the CLI loads, and
 * it reads its switch, MSGPACKR_NATIVE_ACCELERATION_DISABLED, at that moment only. So the switch
 * is set around loading the CLI for a short command and removed again at once, so that nothing
 * the command starts inherits it; a value the user set is left as it is. `start` and `mount`
 * keep the decoder.
 */
export function withoutNativeDecoder<T>(command: string | undefined, load: () => T): T {
  const key = 'MSGPACKR_NATIVE_ACCELERATION_DISABLED';
  if (LONG_RUNNING.has(command ?? '') || process.env[key] !== undefined) return load();
  process.env[key] = 'true';
  try {
    return load();
  } finally {
    delete process.env[key];
  }
}

/** bin/circuit: the bundle if the build made one, else the modules tsc compiled. */
export function launch(): void {
  const main = withoutNativeDecoder(process.argv[2], () => (existsSync(BUNDLE) ? loadBundle().exports : (require('./main') as Main)));
  main.main();
}
