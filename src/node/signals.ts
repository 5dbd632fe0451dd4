import { constants } from 'node:os';
import { E } from '../kit/errors';

/** The original's signal names (docs/cli.md, `signal`). */
export const SIGNAL_NAMES = [
  'ABRT', 'ALRM', 'BUS', 'CHLD', 'CONT', 'FPE', 'HUP', 'ILL', 'INT', 'IO', 'IOT', 'KILL', 'PIPE',
  'PROF', 'QUIT', 'SEGV', 'STOP', 'SYS', 'TERM', 'TRAP', 'TSTP', 'TTIN', 'TTOU', 'URG', 'USR1',
  'USR2', 'VTALRM', 'WINCH', 'XCPU', 'XFSZ',
] as const;

/**
 * Parses a signal: a name matched case-insensitively with whitespace trimmed, with or without a
 * SIG prefix (the original refused `SIGTERM`: a documented change), or a number 1..64.
 * Returns the Node signal name (e.g. `SIGTERM`) and its number.
 */
export function parseSignal(input: string): { name: NodeJS.Signals; num: number } {
  const s = input.trim().toUpperCase();
  if (/^\d+$/.test(s)) {
    const n = Number(s);
    const entry = Object.entries(constants.signals).find(([, v]) => v === n);
    if (!entry) throw E.badSignal(input);
    return { name: entry[0] as NodeJS.Signals, num: n };
  }
  const bare = s.startsWith('SIG') ? s.slice(3) : s;
  if (!(SIGNAL_NAMES as readonly string[]).includes(bare)) throw E.badSignal(input);
  const name = ('SIG' + (bare === 'IOT' ? 'ABRT' : bare)) as NodeJS.Signals;
  const num = (constants.signals as Record<string, number>)[name];
  if (num === undefined) throw E.badSignal(input);
  return { name, num };
}

/** The number of a Node signal name, for exit statuses (128+n). */
export function signalNumber(name: string): number {
  return (constants.signals as Record<string, number>)[name] ?? 0;
}
