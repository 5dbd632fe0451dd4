import t from 'tap';
import * as fs from 'node:fs';
import * as path from 'node:path';

/**
 * The layers of src/, bottom first (each folder is one layer, and
 * imports point down only). fs and cli are both top layers; cli may use fs (it mounts), never the
 * other way round.
 */
export const LAYERS = ['kit', 'api', 'cluster', 'node', 'client', 'fs', 'cli'] as const;

const SRC = path.resolve(__dirname, '../../src');

/** Every module specifier a TypeScript file names: import/export … from, import(), require(). */
export function specifiers(text: string): string[] {
  const out: string[] = [];
  const re = /(?:\bfrom\s*|\bimport\s*\(\s*|\brequire\s*\(\s*|^\s*import\s+)(['"])([^'"]+)\1/gm;
  for (let m = re.exec(text); m; m = re.exec(text)) out.push(m[2]!);
  return out;
}

/** The layer of a path under src/ (the first folder), or undefined outside src/. */
function layerOf(file: string): string | undefined {
  const rel = path.relative(SRC, file);
  if (rel.startsWith('..')) return undefined;
  return rel.split(path.sep)[0];
}

/** The imports of one file that point up the layer order (or into a folder not in it). */
export function upward(file: string, text: string): string[] {
  const from = layerOf(file);
  const bad: string[] = [];
  for (const s of specifiers(text)) {
    if (!s.startsWith('.')) continue;
    const to = layerOf(path.resolve(path.dirname(file), s));
    if (to === undefined) { bad.push(`${s} (outside src/)`); continue; }
    const i = LAYERS.indexOf(from as (typeof LAYERS)[number]);
    const j = LAYERS.indexOf(to as (typeof LAYERS)[number]);
    if (i < 0 || j < 0) bad.push(`${s} (folder not in the layer order ${LAYERS.join(' <- ')})`);
    else if (j > i) bad.push(`${s} (${from} imports ${to}, which is above it)`);
  }
  return bad;
}

function walk(dir: string): string[] {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((d) => {
    const p = path.join(dir, d.name);
    if (d.isDirectory()) return walk(p);
    return d.name.endsWith('.ts') ? [p] : [];
  });
}

t.test('layers: no import under src/ points up the order kit <- api <- cluster <- node <- client <- fs, cli', async (t) => {
  const files = walk(SRC);
  t.ok(files.length > 50, `found the sources (${files.length} files)`);
  const found: string[] = [];
  const outside = files.filter((f) => !LAYERS.includes(layerOf(f) as (typeof LAYERS)[number]));
  t.same(outside.map((f) => path.relative(SRC, f)), [], 'every source file is in a layer folder');
  for (const f of files) {
    for (const b of upward(f, fs.readFileSync(f, 'utf8'))) found.push(`${path.relative(SRC, f)}: ${b}`);
  }
  t.same(found, [], 'no upward imports');
});

t.test('layers: the checker sees every import form and flags an upward one', async (t) => {
  const text = [
    "import type { A } from '../client/local';",
    "import { B } from './x';",
    "export { C } from \"../fs/mount\";",
    "const d = await import('../cli/main');",
    "import '../node/server';",
    "const e = require('../api/types');",
  ].join('\n');
  t.same(specifiers(text), ['../client/local', './x', '../fs/mount', '../cli/main', '../node/server', '../api/types']);
  const file = path.join(SRC, 'node', 'probe.ts');
  t.same(upward(file, text).map((s) => s.split(' ')[0]), ['../client/local', '../fs/mount', '../cli/main']);
  t.same(upward(path.join(SRC, 'kit', 'probe.ts'), "import { X } from '../api/types';").length, 1, 'kit may not use api');
  t.same(upward(path.join(SRC, 'cli', 'probe.ts'), "import { X } from '../fs/mount';"), [], 'cli may use fs');
  t.same(upward(path.join(SRC, 'fs', 'probe.ts'), "import { X } from '../cli/io';").length, 1, 'fs may not use cli');
});
