import type { DialFlags } from './dial';
import type { Client } from '../api/types';
import { AppError, CircuitError } from '../kit/errors';

/**
 * What the rows of the command table share (commands.ts; each kind's rows in src/cli/kinds/).
 * The client commands (docs/cli.md), as a table: name, usage, the original's
 * argument-count text, the `<op> error` prefix, and the action. main.ts wires them to commander.
 */
export interface CommandFlags {
  long?: boolean;
  depth?: boolean;
  scrub?: boolean;
}

export interface Command {
  name: string;
  usage: string;
  summary: string;
  /** Accepts the positional arguments, or throws with the original's text. */
  args: (a: string[]) => boolean;
  argsError: string;
  /** Prefix for failures of the operation itself, as the original (`mkchan error: …`). */
  op?: string;
  flags?: Array<[string, string]>;
  /** f: the command's flags, and how the CLI dialled (to dial again: a recv whose connection ended). */
  run(c: Client, a: string[], f: CommandFlags & DialFlags): Promise<void>;
}

export const one = (a: string[]) => a.length === 1;
export const two = (a: string[]) => a.length === 2;

/** A trailing `...` means recursive for ls and is dropped by every other command (§2.1). */
export function cleanPath(p: string): { path: string; recursive: boolean } {
  const parts = p.split('/').filter(Boolean);
  const recursive = parts[parts.length - 1] === '...';
  if (recursive) parts.pop();
  return { path: '/' + parts.join('/'), recursive };
}
export const P = (p: string) => cleanPath(p).path;

/** Error texts print as one line: JSON parse errors quote the input, newlines and all. */
export function flat(s: string): string {
  return s.replace(/\s*\n\s*/g, ' ');
}
export function oneLine<T>(fn: () => T): T {
  try {
    return fn();
  } catch (e) {
    if (e instanceof CircuitError && e.message.includes('\n')) throw new AppError(e.code, flat(e.message));
    throw e;
  }
}

export function serverAnchor(p: string): string {
  const parts = cleanPath(p).path.split('/').filter(Boolean);
  if (parts.length !== 1 || !/^X[0-9a-f]{16}$/.test(parts[0])) throw new AppError('EINVAL', 'not a server');
  return '/' + parts[0];
}
