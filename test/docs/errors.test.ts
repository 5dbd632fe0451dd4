import t from 'tap';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { constants } from 'node:os';
import { ERROR_CODES } from '../../src/kit/errors';
import { errno } from '../../src/fs/errno';

/** Every error code has an errno through the mount and a row in docs/errors.md, with that number. */
const doc = fs.readFileSync(path.resolve(__dirname, '../../../docs/errors.md'), 'utf8');

t.test('errors: every code maps to its platform errno and is documented', async (t) => {
  for (const code of ERROR_CODES) {
    // libuv's table lacks EHOSTDOWN; Linux's number is 112
    const n = (constants.errno as Record<string, number>)[code] ?? (code === 'EHOSTDOWN' && process.platform === 'linux' ? 112 : undefined);
    t.ok(n > 0, `${code} exists on this platform`);
    t.equal(Math.abs(errno(code)), n, `${code} maps to errno ${n}`);
    t.match(doc, new RegExp('\\| `' + code + '` \\| ' + n + ' \\|'), `${code} has a row with errno ${n} in docs/errors.md`);
  }
  const rows = [...doc.matchAll(/^\| `(E[A-Z0-9]+)` \|/gm)].map((m) => m[1]);
  t.same(rows.filter((r) => !(ERROR_CODES as readonly string[]).includes(r)), [], 'no stale rows');
});
