import { AppError } from '../../kit/errors';
import { then, type Now } from '../../kit/now';
import { type Ctx, doc, type FileSpec, jsonText } from './control';
import { snapshot } from './snapshot';

/** The files every element directory has, and helpers the kinds' file tables share. */

/** The element's peek: in the call itself where the client can answer so (an in-process server). */
function peekOf(c: Ctx): Now<unknown> {
  return c.client.peekNow ? c.client.peekNow(c.anchor, c.call) : c.client.peek(c.anchor, c.call);
}

export const peek = doc('the element\'s state as JSON', snapshot('peek', (c) => then(peekOf(c), jsonText)));

/** The last failure this mount saw on the element, empty when none. */
export const error = doc('the last failure this mount saw on the element (empty when none)', snapshot('error', (c) => {
  const e = c.lastError();
  return e === '' ? '' : e + '\n';
}));

/** A field of the element's peek, as one line of text (or JSON when it is structured). */
export function peekField(field: string, format: (v: unknown) => string = line) {
  return snapshot(field, (c) => then(peekOf(c), (p) => format((p as Record<string, unknown> | null)?.[field])));
}

function line(v: unknown): string {
  return v === undefined || v === null ? '' : `${typeof v === 'string' ? v : JSON.stringify(v)}\n`;
}

/** One argument, or EINVAL echoing what was refused. */
export function oneWord(what: string, l: string): string {
  if (/\s/.test(l)) throw new AppError('EINVAL', `${what}: expected one word, got ${JSON.stringify(l)}`);
  return l;
}

/** `help`: one line per file of a directory, from its table, so it cannot drift from it. */
export function helpFile(files: () => readonly FileSpec[]): FileSpec {
  return doc('this list', snapshot('help', () => helpText(files())));
}

export function helpText(files: readonly FileSpec[]): string {
  const w = Math.max(...files.map((f) => f.name.length));
  return files.map((f) => `${f.name.padEnd(w)}  ${f.mode.padEnd(2)}  ${f.help ?? ''}`.trimEnd() + '\n').join('');
}
