import t from 'tap';
import { mkdtempSync, writeFileSync, chmodSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { generateKey, loadKey, resolveKey, decodeKey, GENERATED_KEY_BYTES, KEY_ENV } from '../../src/cluster/keys';
import { CircuitError } from '../../src/kit/errors';

const dir = mkdtempSync(join(tmpdir(), 'circuit-keys-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));

function file(name: string, text: string): string {
  const p = join(dir, name);
  writeFileSync(p, text, { mode: 0o600 });
  return p;
}

function refusal(fn: () => unknown): CircuitError {
  try {
    fn();
  } catch (err) {
    if (err instanceof CircuitError) return err;
    throw err;
  }
  throw new Error('expected an error');
}

t.test('keys: generateKey is base64 of 64 fresh random bytes', async (t) => {
  const a = generateKey();
  const b = generateKey();
  t.match(a, /^[A-Za-z0-9+/]+=*$/);
  t.equal(Buffer.from(a, 'base64').length, GENERATED_KEY_BYTES);
  t.not(a, b);
});

t.test('keys: a generated key round-trips through a file, newlines and spaces allowed', async (t) => {
  const k = generateKey();
  t.same(loadKey(file('plain', k + '\n')), Buffer.from(k, 'base64'));
  const wrapped = k.slice(0, 40) + '\n  ' + k.slice(40) + '\r\n\n';
  t.same(loadKey(file('wrapped', wrapped)), Buffer.from(k, 'base64'));
});

t.test('keys: a missing or unreadable file is an error naming the file', async (t) => {
  const missing = join(dir, 'nope');
  const e = refusal(() => loadKey(missing));
  t.equal(e.name, 'AppError');
  t.equal(e.code, 'ENOENT');
  t.match(e.message, `problem reading private key file (${missing}): `);
  const isDir = refusal(() => loadKey(dir));
  t.match(isDir.message, /^problem reading private key file/);
  if (process.getuid?.() !== 0) {
    const p = file('locked', generateKey());
    chmodSync(p, 0o000);
    t.match(refusal(() => loadKey(p)).message, /^problem reading private key file/);
  }
});

t.test('keys: empty, non-base64 and short keys are errors, never plaintext', async (t) => {
  const cases: Array<[string, string, RegExp]> = [
    ['empty', '', /empty/],
    ['blank', ' \n\n\t', /empty/],
    ['url-alphabet', generateKey().replace(/[+/]/g, '-') + '-_', /standard alphabet/],
    ['junk', 'this is not a key!', /standard alphabet/],
    ['unpadded', 'YWJjZA', /multiple of 4/],
    ['inner-padding', 'YQ==YWJj', /standard alphabet/],
    ['short', Buffer.alloc(15, 7).toString('base64'), /15 bytes; at least 16/],
  ];
  for (const [name, text, why] of cases) {
    const e = refusal(() => loadKey(file(name, text)));
    t.equal(e.code, 'EINVAL', name);
    t.match(e.message, /^problem decoding base64 private key: /, name);
    t.match(e.message, why, name);
  }
  t.equal(decodeKey(Buffer.alloc(16, 1).toString('base64')).length, 16, 'sixteen bytes is enough');
});

t.test('keys: a key file cut short decodes to another key or fails', async (t) => {
  const k = generateKey();
  const full = loadKey(file('full', k));
  const cut = k.slice(0, 44);
  const short = loadKey(file('cut', cut));
  t.not(short.toString('hex'), full.toString('hex'));
  t.throws(() => loadKey(file('cut-odd', k.slice(0, 43))), /problem decoding base64 private key/);
});

t.test('keys: resolveKey prefers --hmac, then CIRCUIT_HMAC, else no key', async (t) => {
  const a = file('a', generateKey());
  const b = file('b', generateKey());
  t.same(resolveKey(a, { [KEY_ENV]: b }), loadKey(a));
  t.same(resolveKey(undefined, { [KEY_ENV]: b }), loadKey(b));
  t.same(resolveKey('', { [KEY_ENV]: b }), loadKey(b));
  t.equal(resolveKey(undefined, {}), null);
  t.equal(resolveKey(undefined, { [KEY_ENV]: '' }), null);
  t.throws(() => resolveKey(undefined, { [KEY_ENV]: join(dir, 'absent') }), /problem reading private key file/);
  t.throws(() => resolveKey(file('e', ''), {}), /problem decoding base64 private key/);
});
