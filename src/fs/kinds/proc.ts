import { constants } from 'os';
import type { DockerRun, ProcCmd } from '../../api/types';
import { AppError } from '../../kit/errors';
import { doc, jsonText, readWrite, type FileSpec } from '../files/control';
import { jsonCommand } from '../files/json-command';
import { eachLine, lineCommand } from '../files/line-command';
import { oneShot } from '../files/one-shot';
import { snapshot } from '../files/snapshot';
import { inputStream, outputStream } from '../files/stream';
import { oneWord, peek, peekField } from '../files/element';

/** How proc and docker differ in their files: the spec's field in peek, its defaults, the exit's shape. */
export interface ProcessShape {
  /** The peek field holding the spec: `Cmd` (proc), `Run` (docker). */
  field: string;
  /** Fills what a hand-written spec leaves out. */
  defaults: ProcCmd | DockerRun;
  /** The exit status as a shell reports it, from the wait answer. */
  exit(waited: unknown): string;
}

/** The files of a process-like element (proc, docker). */
export function processFiles(shape: ProcessShape): FileSpec[] {
  return [
    doc('write the JSON spec once to start; read it back', readWrite(
      'cmd',
      peekField(shape.field, (v) => (v === undefined || v === null ? '' : jsonText(v))),
      jsonCommand('cmd', async (v, c) => c.client.start(c.anchor, withDefaults(shape, v), c.call)),
    )),
    doc('bytes written go to the process\'s standard input; it closes when the last writer closes', inputStream('stdin')),
    doc('the process\'s standard output as it comes (one reader at a time)', outputStream('stdout')),
    doc('the process\'s standard error as it comes (one reader at a time)', outputStream('stderr')),
    doc('the environment, one NAME=VALUE a line', snapshot('env', async (c) => (await c.client.env(c.anchor, c.call)).map((e) => e + '\n').join(''))),
    doc('waits for the exit, then the final state as JSON', oneShot('wait', async (c) => jsonText(await c.client.wait(c.anchor, c.call)))),
    doc('waits for the exit, then its status as a shell reports it', oneShot('exit', async (c) => shape.exit(await c.client.wait(c.anchor, c.call)))),
    doc('write a signal name or number to send it', lineCommand('signal', eachLine(async (l, c) => c.client.signal(c.anchor, oneWord('signal', l), c.call)))),
    peek,
  ];
}

function withDefaults(shape: ProcessShape, v: unknown) {
  if (v === null || typeof v !== 'object' || Array.isArray(v)) {
    throw new AppError('EINVAL', 'command json not parsing: expected a json object');
  }
  return { ...shape.defaults, ...v };
}

/** The exit status as a shell reports it: the code, or 128+n for death by signal n. */
export function exitStatus(p: unknown): string {
  const r = (p ?? {}) as { ExitCode?: unknown; Signal?: unknown };
  const sig = r.Signal;
  if (typeof sig === 'number' && sig > 0) return `${128 + sig}\n`;
  if (typeof sig === 'string' && sig !== '') {
    const n = (constants.signals as Record<string, number>)[sig.toUpperCase().startsWith('SIG') ? sig.toUpperCase() : `SIG${sig.toUpperCase()}`];
    if (n) return `${128 + n}\n`;
  }
  return `${typeof r.ExitCode === 'number' ? r.ExitCode : -1}\n`;
}

export const CMD_DEFAULTS: ProcCmd = { Env: null, Dir: '', Path: '', Args: null, Scrub: false };

/** A process's files (docs/fs.md, `proc`). */
export const proc = processFiles({ field: 'Cmd', defaults: CMD_DEFAULTS, exit: exitStatus });
