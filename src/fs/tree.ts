import { constants } from 'os';
import type { Kind, Member } from '../api/types';
import { KINDS } from '../node/kinds';
import { AppError } from '../kit/errors';
import { parseRecord, ZoneError } from '../node/zone';
import { type Ctx, type FileSpec, jsonText, readWrite } from './files/control';
import { jsonCommand } from './files/json-command';
import { eachLine, lineCommand, trigger } from './files/line-command';
import { message } from './files/message';
import { oneShot } from './files/one-shot';
import { snapshot } from './files/snapshot';
import { eventStream, inputStream, outputStream, recvOrGiveBack } from './files/stream';

/**
 * The shape of the mount, as data. `resolve` turns a path into a node; each element kind lists
 * its control files (name, mode, which kind of control file), and readdir, getattr, open and
 * access all derive from that list. Under the root:
 *
 *   /.self                      symlink to the server this mount dialled
 *   /X…/a/b                     anchors
 *   /X…/a/b/KIND                the element an anchor holds, a directory named after its kind
 *   /X…/a/b/KIND/FILE           its control files
 */
export type Node =
  | { type: 'root' }
  | { type: 'self' }
  | { type: 'anchor'; anchor: string }
  | { type: 'element'; anchor: string; kind: Kind }
  | { type: 'file'; anchor: string; kind: Kind; file: FileSpec }
  | { type: 'none' };

export const SELF = '.self';

export function resolve(path: string): Node {
  const parts = path.split('/').filter((p) => p !== '');
  if (parts.length === 0) return { type: 'root' };
  if (parts.length === 1 && parts[0] === SELF) return { type: 'self' };
  for (let i = 1; i < parts.length; i++) {
    const kind = parts[i];
    if (!isKind(kind)) continue;
    const anchor = '/' + parts.slice(0, i).join('/');
    if (i === parts.length - 1) return { type: 'element', anchor, kind };
    const file = i === parts.length - 2 ? filesOf(kind).find((f) => f.name === parts[i + 1]) : undefined;
    return file ? { type: 'file', anchor, kind, file } : { type: 'none' };
  }
  return { type: 'anchor', anchor: '/' + parts.join('/') };
}

function isKind(name: string): name is Kind {
  return Object.prototype.hasOwnProperty.call(FILES, name);
}

/** The control files of an element directory, the `error` file last. */
export function filesOf(kind: Kind): readonly FileSpec[] {
  return FILES[kind];
}

/** What `mkdir KIND` makes: an idle or empty element of that kind (its module's defaultSpec). */
export function defaultSpec(kind: Kind): unknown {
  const k = KINDS.find((x) => x.kind === kind);
  if (!k) throw new AppError('ENOTSUP', `unknown element kind ${kind}`);
  return k.defaultSpec;
}

// ---- the files, kind by kind ------------------------------------------------------------

const peek = snapshot('peek', async (c) => jsonText(await c.client.peek(c.anchor, c.call)));

/** The last failure this mount saw on the element, empty when none. */
const error = snapshot('error', async (c) => {
  const e = c.lastError();
  return e === '' ? '' : e + '\n';
});

/** A field of the element's peek, as one line of text (or JSON when it is structured). */
function peekField(field: string, format: (v: unknown) => string = line) {
  return snapshot(field, async (c) => {
    const p = (await c.client.peek(c.anchor, c.call)) as Record<string, unknown> | null;
    return format(p?.[field]);
  });
}

function line(v: unknown): string {
  return v === undefined || v === null ? '' : `${typeof v === 'string' ? v : JSON.stringify(v)}\n`;
}

/** One argument, or EINVAL echoing what was refused. */
function oneWord(what: string, l: string): string {
  if (/\s/.test(l)) throw new AppError('EINVAL', `${what}: expected one word, got ${JSON.stringify(l)}`);
  return l;
}

const server: FileSpec[] = [
  peek,
  snapshot('members', async (c) =>
    (await c.client.members(c.anchor, c.call)).map((m: Member) => `${m.id} ${m.url} ${m.state}\n`).join(''),
  ),
  lineCommand(
    'ctl',
    eachLine(async (l, c) => {
      const [verb, ...args] = l.split(/\s+/);
      if (verb === 'join' && args.length === 1) return c.client.join(c.anchor, args[0], c.call);
      if (verb === 'stop' && args.length === 0) return c.client.stop(c.anchor, c.call);
      throw new AppError('EINVAL', `ctl: unknown command ${JSON.stringify(l)} (want "join URL" or "stop")`);
    }),
  ),
  snapshot('log', (c) => c.client.log(c.anchor, c.call)),
];

const chan: FileSpec[] = [
  readWrite(
    'cap',
    peekField('Cap'),
    lineCommand(
      'cap',
      eachLine(async (l, c) => {
        if (!/^\d+$/.test(l)) throw new AppError('EINVAL', `capacity must be a non-negative integer, got ${JSON.stringify(l)}`);
        await c.client.setCap(c.anchor, Number(l), c.call);
      }),
    ),
  ),
  message('send'),
  oneShot('recv', recvOrGiveBack),
  trigger('close', (c) => c.client.close(c.anchor, c.call)),
  peek,
];

/** The exit status as a shell reports it: the code, or 128+n for death by signal n. */
export function exitStatus(p: unknown): string {
  // A container's wait answers the engine's inspection: its status is in State.ExitCode.
  const q = (p ?? {}) as { ExitCode?: unknown; Signal?: unknown; State?: { ExitCode?: unknown } };
  const r = q.ExitCode === undefined && q.State ? { ExitCode: q.State.ExitCode, Signal: undefined } : q;
  const sig = r.Signal;
  if (typeof sig === 'number' && sig > 0) return `${128 + sig}\n`;
  if (typeof sig === 'string' && sig !== '') {
    const n = (constants.signals as Record<string, number>)[sig.toUpperCase().startsWith('SIG') ? sig.toUpperCase() : `SIG${sig.toUpperCase()}`];
    if (n) return `${128 + n}\n`;
  }
  return `${typeof r.ExitCode === 'number' ? r.ExitCode : -1}\n`;
}

function procFiles(kind: 'proc' | 'docker'): FileSpec[] {
  return [
    readWrite(
      'cmd',
      peekField(kind === 'proc' ? 'Cmd' : 'Run', (v) => (v === undefined || v === null ? '' : jsonText(v))),
      jsonCommand('cmd', async (v, c) => c.client.start(c.anchor, withDefaults(kind, v), c.call)),
    ),
    inputStream('stdin'),
    outputStream('stdout'),
    outputStream('stderr'),
    oneShot('wait', async (c) => jsonText(await c.client.wait(c.anchor, c.call))),
    oneShot('exit', async (c) => exitStatus(await c.client.wait(c.anchor, c.call))),
    lineCommand('signal', eachLine(async (l, c) => c.client.signal(c.anchor, oneWord('signal', l), c.call))),
    peek,
  ];
}

/** Fills what a hand-written cmd leaves out, so `{"Path":"/bin/date"}` is enough. */
function withDefaults(kind: 'proc' | 'docker', v: unknown) {
  if (v === null || typeof v !== 'object' || Array.isArray(v)) {
    throw new AppError('EINVAL', 'command json not parsing: expected a json object');
  }
  const base = { Env: null, Dir: '', Path: '', Args: null, Scrub: false };
  const docker = { Image: '', Memory: 0, CpuShares: 0, Lxc: null, Volume: null, Entry: '' };
  return kind === 'proc' ? { ...base, ...v } : { ...base, ...docker, ...v };
}

/** A DNS element's records (peek's name → lines map) as zone-file lines. */
function zoneText(v: unknown): string {
  if (!v || typeof v !== 'object') return '';
  return Object.values(v as Record<string, unknown>)
    .flatMap((rrs) => (Array.isArray(rrs) ? rrs : []))
    .map((rr) => `${String(rr)}\n`)
    .join('');
}

/**
 * `records` for writing: the text of one open is one request, all or nothing, so that a `>` of
 * five lines with one bad line changes nothing. Shells write line by line (bash's stdout is
 * line-buffered), so a write only checks the lines it completes (numbered from the open's first
 * line); a bad one fails that write and spoils the open. A close applies what was written since
 * the last one: `>` (truncated) replaces all records, `>>` adds. A shell's `>` closes its first
 * descriptor before writing (dup2), so an empty `>` (`: > records` empties them) is applied at
 * the last close (release) when nothing else was. The first write also asks the element for an
 * empty add, so a missing element fails there, as for any other control file.
 */
function recordsWriter(): FileSpec {
  return {
    name: 'records',
    mode: 'w',
    blocking: false,
    open(flags) {
      let text = '';
      let checked = 0; // chars of text already checked
      let lineNo = 0;
      let truncated = (flags & O_TRUNC) !== 0;
      let spoilt: unknown = null;
      let runs = 0;
      let probed = false;
      const apply = async (c: Ctx) => {
        const t = text;
        text = '';
        checked = 0;
        lineNo = 0;
        await c.client.dnsSet(c.anchor, t, truncated && runs++ === 0, c.call);
      };
      return {
        async write(data, c) {
          if (spoilt) throw spoilt;
          try {
            if (!probed) await c.client.dnsSet(c.anchor, '', false, c.call);
            probed = true;
            text += data.toString('utf8');
            const end = text.lastIndexOf('\n');
            if (end < checked) return;
            for (const l of text.slice(checked, end).split(/\r\n|\n|\r/)) parseRecord(l, ++lineNo);
            checked = end + 1;
          } catch (e) {
            spoilt = e instanceof ZoneError ? new AppError('EINVAL', `set resoure record error: ${e.message}`) : e;
            throw spoilt;
          }
        },
        async flush(c) {
          if (!spoilt && text.trim() !== '') await apply(c);
        },
        async release(c) {
          if (!spoilt && (text.trim() !== '' || (truncated && runs === 0))) await apply(c);
        },
        truncate(size) {
          if (size === 0) truncated = true;
        },
      };
    },
  };
}

const O_TRUNC = 0o1000;

const dns: FileSpec[] = [
  readWrite(
    'address',
    peekField('Address'),
    lineCommand('address', eachLine(async (l, c) => c.client.dnsRebind(c.anchor, oneWord('address', l), c.call))),
  ),
  readWrite(
    'records',
    peekField('Records', zoneText),
    recordsWriter(),
  ),
  lineCommand('unset', eachLine(async (l, c) => c.client.dnsUnset(c.anchor, oneWord('unset', l), c.call))),
  peek,
];

const subscription: FileSpec[] = [
  oneShot('recv', recvOrGiveBack),
  eventStream('events'),
  peek,
];

const FILES: Record<Kind, readonly FileSpec[]> = {
  server: [...server, error],
  chan: [...chan, error],
  proc: [...procFiles('proc'), error],
  docker: [...procFiles('docker'), error],
  dns: [...dns, error],
  '@join': [...subscription, error],
  '@leave': [...subscription, error],
};
