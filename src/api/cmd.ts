import type { ProcCmd } from './types';
import { E } from '../kit/errors';

/** JSON text decoded (`command json not parsing: …` when it is not JSON), or a value as it is. */
export function decodeJson(input: unknown): unknown {
  if (typeof input !== 'string') return input;
  try {
    return JSON.parse(input);
  } catch (e) {
    throw E.badCmd((e as Error).message);
  }
}

/**
 * Reads a process Cmd (docs/fs.md, `proc`) from JSON text or a decoded value: keys match
 * case-insensitively, unknown keys are ignored, types are checked, Path is trimmed.
 */
export function parseProcCmd(input: unknown): ProcCmd {
  const v = decodeJson(input);
  if (!v || typeof v !== 'object' || Array.isArray(v)) throw E.badCmd('want a JSON object');
  const o: Record<string, unknown> = {};
  for (const [k, x] of Object.entries(v)) o[k.toLowerCase()] = x;
  const strs = (k: string): string[] | null => {
    const x = o[k];
    if (x === undefined || x === null) return null;
    if (!Array.isArray(x) || !x.every((s) => typeof s === 'string')) throw E.badCmd(`${k} must be a list of strings`);
    return x as string[];
  };
  const str = (k: string): string => {
    const x = o[k];
    if (x === undefined || x === null) return '';
    if (typeof x !== 'string') throw E.badCmd(`${k} must be a string`);
    return x;
  };
  const path = str('path').trim();
  if (!path) throw E.badCmd('path is missing');
  if (o.scrub !== undefined && o.scrub !== null && typeof o.scrub !== 'boolean') throw E.badCmd('scrub must be true or false');
  const env = strs('env');
  const args = strs('args');
  const dir = str('dir');
  // The kernel takes these as C strings: a NUL byte would cut one short. Refused here, with the
  // field's name only (an environment value may be a secret, and this message is logged).
  const nul = (x: string) => x.includes('\0');
  if (nul(path)) throw E.badCmd('path contains a NUL byte');
  if (nul(dir)) throw E.badCmd('dir contains a NUL byte');
  args?.forEach((a, i) => {
    if (nul(a)) throw E.badCmd(`args[${i}] contains a NUL byte`);
  });
  env?.forEach((kv, i) => {
    if (nul(kv)) throw E.badCmd(`env[${i}] contains a NUL byte`);
    if (kv.indexOf('=') <= 0) throw E.badCmd(`env entry ${JSON.stringify(kv)} is not KEY=VALUE`);
  });
  return { Env: env, Dir: dir, Path: path, Args: args, Scrub: o.scrub === true };
}
