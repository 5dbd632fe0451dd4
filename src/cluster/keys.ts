/**
 * The cluster key: one secret shared by every server and client of a cluster. `circuit keygen`
 * prints a fresh one; `--hmac FILE` (or `CIRCUIT_HMAC`) names the file that holds it. The file
 * is standard base64 text (whitespace and newlines allowed), as in the original, so existing key
 * files keep working. Every problem with a named key file is an error: a broken key never falls
 * back to plaintext (the original silently did so for an empty file).
 */
import fs = require('node:fs');
import { AppError } from '../kit/errors';

/** Bytes of randomness in a generated key: as many as the original's keygen printed. */
export const GENERATED_KEY_BYTES = 64;

/** Shortest decoded key we accept; anything shorter is a mistake, not a key. */
export const MIN_KEY_BYTES = 16;

/** The environment variable that names a key file when `--hmac` is not given. */
export const KEY_ENV = 'CIRCUIT_HMAC';

/** A fresh key as standard base64 of 64 bytes from the operating system's CSPRNG. */
export function generateKey(): string {
  // Loaded here: the CLI reads key files on every command but makes a key only for keygen.
  return (require('node:crypto') as typeof import('node:crypto')).randomBytes(GENERATED_KEY_BYTES).toString('base64');
}

/**
 * Writes a fresh key to file, created with mode 0600 (`circuit keygen -o FILE`). An existing file
 * is never overwritten unless force; with force it is removed first, so the new file is 0600 too.
 */
export function writeKeyFile(file: string, force = false): void {
  if (force) fs.rmSync(file, { force: true });
  let fd: number;
  try {
    fd = fs.openSync(file, fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL | fs.constants.O_NOFOLLOW, 0o600);
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    if (e.code === 'EEXIST') throw new AppError('EEXIST', `key file ${file} exists; not overwriting it (use -f to replace it)`);
    throw new AppError(e.code === 'ENOENT' || e.code === 'EACCES' ? e.code : 'EIO', `cannot create key file ${file}: ${e.message}`, { cause: err });
  }
  try {
    fs.writeSync(fd, generateKey() + '\n');
  } finally {
    fs.closeSync(fd);
  }
}

/**
 * Refuses a key file that others may read or write, as ssh refuses such private keys: whoever
 * can read it holds the cluster, whoever can write it can swap it.
 */
function checkPrivate(file: string, mode: number): void {
  const bits = mode & 0o077;
  if (!bits) return;
  const m = '0' + (mode & 0o777).toString(8);
  const how = bits & 0o044 ? 'readable' : 'writable';
  throw new AppError('EACCES', `key file ${file} is ${how} by others (mode ${m}); chmod 600 ${file}`);
}

/** Reads and decodes a key file; any failure is an AppError with the file's name. */
export function loadKey(file: string): Buffer {
  let text: string;
  let mode: number;
  try {
    const fd = fs.openSync(file, 'r');
    try {
      mode = fs.fstatSync(fd).mode;
      text = fs.readFileSync(fd, 'utf8');
    } finally {
      fs.closeSync(fd);
    }
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    const why = e && e.message ? e.message : String(err);
    const code = e && (e.code === 'ENOENT' || e.code === 'EACCES' || e.code === 'EISDIR') ? e.code : 'EIO';
    throw new AppError(code, `problem reading private key file (${file}): ${why}`, { cause: err });
  }
  checkPrivate(file, mode);
  return decodeKey(text);
}

/**
 * Decodes key text strictly: Node's base64 decoder skips characters it does not know, so the
 * text is checked against the standard alphabet and padded length first (as Go's StdEncoding,
 * which the original used, would).
 */
export function decodeKey(text: string): Buffer {
  const compact = text.replace(/\s+/g, '');
  const bad = (why: string) => new AppError('EINVAL', `problem decoding base64 private key: ${why}`);
  if (compact.length === 0) throw bad('the key file is empty');
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(compact)) throw bad('illegal base64 data (not the standard alphabet)');
  if (compact.length % 4 !== 0) throw bad('illegal base64 data (length is not a multiple of 4)');
  const key = Buffer.from(compact, 'base64');
  if (key.length < MIN_KEY_BYTES) {
    throw bad(`key is ${key.length} bytes; at least ${MIN_KEY_BYTES} are required (use circuit keygen)`);
  }
  return key;
}

/**
 * The key a command runs with: the `--hmac` file if given, else the `CIRCUIT_HMAC` file, else
 * null (no key: plaintext, as the original's default). An empty flag or variable counts as unset.
 */
export function resolveKey(flag?: string, env: NodeJS.ProcessEnv = process.env): Buffer | null {
  const file = flag !== undefined && flag !== '' ? flag : env[KEY_ENV];
  if (file === undefined || file === '') return null;
  return loadKey(file);
}
