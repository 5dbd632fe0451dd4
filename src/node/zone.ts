import { isIPv4, isIPv6 } from 'node:net';
import { AppError } from '../kit/errors';

/**
 * Resource records in zone-file presentation syntax, one record a line:
 *
 *     owner [TTL] [class] TYPE RDATA        (TTL and class in either order)
 *
 * The origin is always the root: a relative name gets a trailing dot (`@` is the root itself).
 * The default TTL is 3600 and the only class is IN. TTLs take plain seconds or BIND units
 * (`1h30m`). `;` starts a comment; parentheses are allowed but must close on the same line;
 * `$TTL`/`$ORIGIN` directives, escapes in names and blank-led "same owner" lines are not supported.
 *
 * Names keep the spelling they were given (presentation, peek) and carry a lower-case `key`
 * that queries and unset match against: DNS names compare case-insensitively.
 *
 * Everything here is pure: parseZone is all-or-nothing and throws a ZoneError naming the line.
 */

/** The record types the DNS element stores and serves. */
export type RecordType = 'A' | 'AAAA' | 'CNAME' | 'MX' | 'NS' | 'PTR' | 'SOA' | 'SRV' | 'TXT';

/** Wire codes of the supported types (RFC 1035, 3596, 2782). */
export const TYPE_CODES: Readonly<Record<RecordType, number>> = {
  A: 1, NS: 2, CNAME: 5, SOA: 6, PTR: 12, MX: 15, TXT: 16, AAAA: 28, SRV: 33,
};

export const DEFAULT_TTL = 3600;
/** RFC 2181 §8: TTLs are 31-bit. */
export const MAX_TTL = 0x7fffffff;

/** What every record has: the owner name as given (absolute) and its lower-case match key. */
export interface RecordHead {
  name: string;
  key: string;
  ttl: number;
}

/** The typed RDATA, one variant per supported type. Names in it are absolute, case as given. */
export type Rdata =
  | { type: 'A'; address: string }
  | { type: 'AAAA'; address: string } // RFC 5952 canonical text
  | { type: 'CNAME' | 'NS' | 'PTR'; target: string }
  | { type: 'MX'; preference: number; exchange: string }
  | { type: 'TXT'; strings: Buffer[] }
  | { type: 'SRV'; priority: number; weight: number; port: number; target: string }
  | {
      type: 'SOA'; mname: string; rname: string; serial: number;
      refresh: number; retry: number; expire: number; minimum: number;
    };

export type ZoneRecord = RecordHead & Rdata;

/** A parse failure: EINVAL with `line N: reason`, the line and reason kept for callers. */
export class ZoneError extends AppError {
  constructor(readonly line: number, readonly reason: string) {
    super('EINVAL', `line ${line}: ${reason}`);
  }
}

/** Parses a whole text, one record a line; blank and comment lines are skipped. */
export function parseZone(text: string): ZoneRecord[] {
  const out: ZoneRecord[] = [];
  const lines = text.split(/\r\n|\n|\r/);
  for (let i = 0; i < lines.length; i++) {
    const rec = parseRecord(lines[i], i + 1);
    if (rec) out.push(rec);
  }
  return out;
}

/** Parses one line; null when it holds no record (blank or comment only). */
export function parseRecord(line: string, lineNo = 1): ZoneRecord | null {
  const fail = (reason: string): never => {
    throw new ZoneError(lineNo, reason);
  };
  const tokens = tokenize(line, fail);
  if (tokens.length === 0) return null;
  const first = tokens[0];
  if (first.quoted) fail('owner name cannot be a quoted string');
  if (first.text.startsWith('$')) fail(`directives are not supported: "${first.text}"`);
  const owner = parseName(first.text, 'owner name', fail);
  let ttl: number | undefined;
  let classSeen = false;
  let i = 1;
  for (; ; i++) {
    if (i >= tokens.length) fail('missing type');
    const t = tokens[i];
    if (t.quoted) fail(`unexpected quoted string: "${t.text}"`);
    const up = t.text.toUpperCase();
    if (isRecordType(up)) break;
    if (CLASSES.has(up) || /^CLASS\d+$/.test(up)) {
      if (classSeen) fail(`class given twice: "${t.text}"`);
      if (up !== 'IN') fail(`class ${up} is not supported (only IN)`);
      classSeen = true;
    } else if (/^[0-9]/.test(t.text)) {
      if (ttl !== undefined) fail(`TTL given twice: "${t.text}"`);
      ttl = parseTtl(t.text) ?? fail(`not a TTL: "${t.text}"`);
    } else if (OTHER_TYPES.has(up) || /^TYPE\d+$/.test(up)) {
      fail(`unsupported type: "${t.text}" (supported: ${Object.keys(TYPE_CODES).join(', ')})`);
    } else {
      fail(ttl === undefined ? `not a TTL: "${t.text}"` : `not a type: "${t.text}"`);
    }
  }
  const type = tokens[i].text.toUpperCase() as RecordType;
  const rdata = parseRdata(type, tokens.slice(i + 1), fail);
  return { name: owner.name, key: owner.key, ttl: ttl ?? DEFAULT_TTL, ...rdata };
}

/** The original's presentation form: `name.\tTTL\tIN\tTYPE\tRDATA`. */
export function present(r: ZoneRecord): string {
  return `${r.name}\t${r.ttl}\tIN\t${r.type}\t${presentRdata(r)}`;
}

/** The RDATA part of the presentation form. */
export function presentRdata(r: Rdata): string {
  switch (r.type) {
    case 'A':
    case 'AAAA':
      return r.address;
    case 'CNAME':
    case 'NS':
    case 'PTR':
      return r.target;
    case 'MX':
      return `${r.preference} ${r.exchange}`;
    case 'TXT':
      return r.strings.map(quoteString).join(' ');
    case 'SRV':
      return `${r.priority} ${r.weight} ${r.port} ${r.target}`;
    case 'SOA':
      return [r.mname, r.rname, r.serial, r.refresh, r.retry, r.expire, r.minimum].join(' ');
  }
}

/**
 * The match key of a name as a user or a query spells it: ASCII lower-case, absolute (with or
 * without the trailing dot, `@` and the empty string mean the root). Null if it is no name.
 */
export function nameKey(text: string): string | null {
  const t = text.trim();
  if (t === '' || t === '@' || t === '.') return '.';
  try {
    return parseName(t, 'name', (reason) => {
      throw new Error(reason);
    }).key;
  } catch {
    return null;
  }
}

/** ASCII-only lower-casing: DNS case-insensitivity covers A–Z and nothing else (RFC 4343). */
export function asciiLower(s: string): string {
  return s.replace(/[A-Z]+/g, (m) => m.toLowerCase());
}

/** The eight 16-bit groups of a valid IPv6 address (with or without an embedded IPv4 tail). */
export function ipv6Groups(text: string): number[] {
  let hex = text;
  const tail: number[] = [];
  if (text.includes('.')) {
    const at = text.lastIndexOf(':');
    const b = text.slice(at + 1).split('.').map(Number);
    tail.push((b[0] << 8) | b[1], (b[2] << 8) | b[3]);
    hex = text.slice(0, at + 1);
    if (!hex.endsWith('::')) hex = hex.slice(0, -1);
  }
  const parts = (s: string) => (s === '' ? [] : s.split(':').map((g) => parseInt(g, 16)));
  const gap = hex.indexOf('::');
  if (gap < 0) return [...parts(hex), ...tail];
  const h = parts(hex.slice(0, gap));
  const r = parts(hex.slice(gap + 2));
  return [...h, ...new Array<number>(8 - tail.length - h.length - r.length).fill(0), ...r, ...tail];
}

/** RFC 5952 text: lower-case, no leading zeros, the longest run (≥2) of zero groups as `::`. */
export function canonicalIPv6(groups: number[]): string {
  if (groups.slice(0, 5).every((g) => g === 0) && groups[5] === 0xffff) {
    return `::ffff:${groups[6] >> 8}.${groups[6] & 255}.${groups[7] >> 8}.${groups[7] & 255}`;
  }
  let best = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLen) [best, bestLen] = [i, j - i];
    i = j === i ? i + 1 : j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (best < 0) return hex.join(':');
  return `${hex.slice(0, best).join(':')}::${hex.slice(best + bestLen).join(':')}`;
}

// ---- tokens ---------------------------------------------------------------------------------

interface Token {
  /** The token as written: for a quoted string, what is between the quotes (escapes kept). */
  text: string;
  quoted: boolean;
}

type Fail = (reason: string) => never;

/** Splits a line on blanks; handles quotes, backslash escapes, `;` comments and `( )`. */
function tokenize(line: string, fail: Fail): Token[] {
  const tokens: Token[] = [];
  let depth = 0;
  let i = 0;
  while (i < line.length) {
    const c = line[i];
    if (c === ' ' || c === '\t') {
      i++;
    } else if (c === ';') {
      break;
    } else if (c === '(' || c === ')') {
      depth += c === '(' ? 1 : -1;
      if (depth < 0) fail('unbalanced parentheses');
      i++;
    } else if (c === '"') {
      let j = i + 1;
      while (j < line.length && line[j] !== '"') j += line[j] === '\\' ? 2 : 1;
      if (j >= line.length) fail('unterminated quoted string');
      tokens.push({ text: line.slice(i + 1, j), quoted: true });
      i = j + 1;
    } else {
      let j = i;
      while (j < line.length && !' \t;()'.includes(line[j])) {
        if (line[j] === '"') fail('unexpected quote inside a word');
        if (line[j] === '\\' && j + 1 >= line.length) fail('backslash at end of line');
        j += line[j] === '\\' ? 2 : 1;
      }
      tokens.push({ text: line.slice(i, j), quoted: false });
      i = j;
    }
  }
  if (depth !== 0) fail('unbalanced parentheses (a record must fit on one line)');
  for (const t of tokens) {
    // eslint-disable-next-line no-control-regex
    const bad = /[\x00-\x08\x0a-\x1f\x7f]/.exec(t.text);
    if (bad) fail(`control character 0x${bad[0].charCodeAt(0).toString(16).padStart(2, '0')}`);
  }
  return tokens;
}

const CLASSES = new Set(['IN', 'CH', 'CS', 'HS', 'NONE', 'ANY']);

/** Types we recognise by name but do not serve: a clearer error than "not a TTL". */
const OTHER_TYPES = new Set([
  'HINFO', 'MINFO', 'MB', 'MG', 'MR', 'NULL', 'WKS', 'RP', 'AFSDB', 'SIG', 'KEY', 'LOC', 'NAPTR',
  'KX', 'CERT', 'DNAME', 'OPT', 'APL', 'DS', 'SSHFP', 'IPSECKEY', 'RRSIG', 'NSEC', 'DNSKEY',
  'DHCID', 'NSEC3', 'NSEC3PARAM', 'TLSA', 'SMIMEA', 'HIP', 'CDS', 'CDNSKEY', 'OPENPGPKEY', 'CSYNC',
  'ZONEMD', 'SVCB', 'HTTPS', 'SPF', 'EUI48', 'EUI64', 'TKEY', 'TSIG', 'URI', 'CAA', 'AXFR', 'IXFR',
]);

function isRecordType(s: string): s is RecordType {
  return Object.prototype.hasOwnProperty.call(TYPE_CODES, s);
}

// ---- fields ---------------------------------------------------------------------------------

/** A domain name: made absolute, checked against the wire limits (63-byte labels, 255 total). */
function parseName(text: string, what: string, fail: Fail): { name: string; key: string } {
  if (text === '@' || text === '.') return { name: '.', key: '.' };
  if (text.includes('\\')) fail(`escapes in names are not supported: "${text}"`);
  if (!/^[\x21-\x7e]+$/.test(text)) fail(`not a valid ${what}: "${text}"`);
  const name = text.endsWith('.') ? text : `${text}.`;
  const labels = name.slice(0, -1).split('.');
  if (labels.some((l) => l === '')) fail(`empty label in ${what}: "${text}"`);
  if (labels.some((l) => l.length > 63)) fail(`label longer than 63 bytes in ${what}: "${text}"`);
  if (labels.reduce((n, l) => n + l.length + 1, 1) > 255) fail(`${what} longer than 255 bytes`);
  return { name, key: asciiLower(name) };
}

const UNITS: Record<string, number> = { s: 1, m: 60, h: 3600, d: 86400, w: 604800 };

/** Seconds, or BIND-style units (`1w2d3h4m5s`, a bare number last); null if malformed or > 2^31-1. */
export function parseTtl(text: string): number | null {
  if (/^\d+$/.test(text)) {
    const n = Number(text);
    return n <= MAX_TTL ? n : null;
  }
  const m = /^((?:\d+[smhdw])+)(\d+)?$/i.exec(text);
  if (!m) return null;
  let total = Number(m[2] ?? 0);
  for (const [, num, unit] of m[1].matchAll(/(\d+)([smhdw])/gi)) {
    total += Number(num) * UNITS[unit.toLowerCase()];
  }
  return total <= MAX_TTL ? total : null;
}

function parseUint(text: string, max: number, what: string, fail: Fail): number {
  if (!/^\d+$/.test(text) || Number(text) > max) fail(`not a ${what}: "${text}"`);
  return Number(text);
}

/** What each type's RDATA holds, for the "wrong number of fields" message. */
const FIELDS: Record<Exclude<RecordType, 'TXT'>, string> = {
  A: 'address', AAAA: 'address', CNAME: 'target', NS: 'target', PTR: 'target',
  MX: 'preference exchange', SRV: 'priority weight port target',
  SOA: 'mname rname serial refresh retry expire minimum',
};

function parseRdata(type: RecordType, tokens: Token[], fail: Fail): Rdata {
  if (type === 'TXT') {
    if (tokens.length === 0) fail('missing TXT data');
    const strings = tokens.map((t) => txtString(t.text, fail));
    if (strings.reduce((n, s) => n + s.length + 1, 0) > 65535) fail('TXT data longer than 65535 bytes');
    return { type, strings };
  }
  const want = FIELDS[type].split(' ');
  if (tokens.length !== want.length) {
    fail(`${type} takes ${want.length} field${want.length > 1 ? 's' : ''} (${FIELDS[type]}), got ${tokens.length}`);
  }
  const quoted = tokens.find((t) => t.quoted);
  if (quoted) fail(`unexpected quoted string: "${quoted.text}"`);
  const f = tokens.map((t) => t.text);
  const name = (s: string, what: string) => parseName(s, what, fail).name;
  const u16 = (s: string, what: string) => parseUint(s, 0xffff, what, fail);
  const dur = (s: string, what: string) => parseTtl(s) ?? fail(`not a ${what}: "${s}"`);
  switch (type) {
    case 'A':
      if (!isIPv4(f[0])) fail(`not an IPv4 address: "${f[0]}"`);
      return { type, address: f[0] };
    case 'AAAA':
      if (!isIPv6(f[0]) || f[0].includes('%')) fail(`not an IPv6 address: "${f[0]}"`);
      return { type, address: canonicalIPv6(ipv6Groups(f[0])) };
    case 'CNAME':
    case 'NS':
    case 'PTR':
      return { type, target: name(f[0], `${type} target`) };
    case 'MX':
      return { type, preference: u16(f[0], 'preference'), exchange: name(f[1], 'exchange') };
    case 'SRV':
      return {
        type, priority: u16(f[0], 'priority'), weight: u16(f[1], 'weight'), port: u16(f[2], 'port'),
        target: name(f[3], 'SRV target'),
      };
    case 'SOA':
      return {
        type, mname: name(f[0], 'mname'), rname: name(f[1], 'rname'),
        serial: parseUint(f[2], 0xffffffff, 'serial', fail), refresh: dur(f[3], 'refresh'),
        retry: dur(f[4], 'retry'), expire: dur(f[5], 'expire'), minimum: dur(f[6], 'minimum'),
      };
  }
}

/** A TXT character-string: `\DDD` is a byte, `\X` is X, the rest is UTF-8; at most 255 bytes. */
function txtString(text: string, fail: Fail): Buffer {
  const bytes: number[] = [];
  for (let i = 0; i < text.length; i++) {
    if (text[i] !== '\\') {
      const width = isHigh(text, i) ? 2 : 1;
      bytes.push(...Buffer.from(text.slice(i, i + width), 'utf8'));
      i += width - 1;
      continue;
    }
    const d = /^\d{3}/.exec(text.slice(i + 1, i + 4));
    if (d) {
      if (Number(d[0]) > 255) fail(`bad escape \\${d[0]} (above 255)`);
      bytes.push(Number(d[0]));
      i += 3;
    } else if (/^\d/.test(text.slice(i + 1, i + 2))) {
      fail(`bad escape \\${text.slice(i + 1, i + 4)} (want three digits)`);
    } else {
      if (i + 1 >= text.length) fail('backslash at end of string');
      bytes.push(...Buffer.from(text[i + 1], 'utf8'));
      i += 1;
    }
  }
  if (bytes.length > 255) fail(`TXT string longer than 255 bytes (${bytes.length})`);
  return Buffer.from(bytes);
}

/** True at the first half of a surrogate pair (an astral character takes two UTF-16 units). */
function isHigh(s: string, i: number): boolean {
  const c = s.charCodeAt(i);
  return c >= 0xd800 && c <= 0xdbff && i + 1 < s.length;
}

/** miekg's form of a character-string: quoted, `"` and `\` escaped, non-printables as \DDD. */
function quoteString(b: Buffer): string {
  let s = '"';
  for (const byte of b) {
    if (byte === 0x22 || byte === 0x5c) s += `\\${String.fromCharCode(byte)}`;
    else if (byte < 0x20 || byte > 0x7e) s += `\\${String(byte).padStart(3, '0')}`;
    else s += String.fromCharCode(byte);
  }
  return `${s}"`;
}
