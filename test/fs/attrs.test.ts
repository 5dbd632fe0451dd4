import { readFile, rmdir, stat } from 'fs/promises';
import { dirname } from 'path';
import t from 'tap';
import { childWhileBlocked, mountServer } from './helpers';

/**
 * The patched fuse-native answers the getattr of a control file whose attributes the mount
 * handed it, on its FUSE thread, for as long as the kernel caches attributes (0.1 s;
 * patches/fuse-native-attrs.patch, src/fs/dispatch.ts). The kernel's own cache does not serve a
 * stat that asks for the access time after a read of the file (a direct read marks it stale),
 * which is what `readFileSync` does (its fstat asks for every basic field). Seen here by a child's stat while this process's
 * JavaScript thread is blocked.
 */
// eslint-disable-next-line @typescript-eslint/no-var-requires
const binding = require('node-gyp-build')(dirname(require.resolve('fuse-native/package.json'))) as Record<string, unknown>;
const skip = typeof binding.fuse_native_attrs_put !== 'function' && 'fuse-native is not patched with fuse-native-attrs.patch (scripts/patch-fuse-native.sh)';

/**
 * Reads the file (in JavaScript's pool: its attributes were just answered and handed over, and
 * its access time is now stale), then has a child stat it while this thread is blocked for up to
 * blockMs: whether the child's answer came before the block ended, and what it said.
 */
async function statWhileBlocked(file: string, blockMs: number, readFirst = true): Promise<{ inTime: boolean; out: string }> {
  if (readFirst) await readFile(file);
  const r = await childWhileBlocked('bash', ['-c', 'stat -c "%s %a %F %X" "$1" > "$2.tmp" 2>&1; mv "$2.tmp" "$2"', 'stat', file], blockMs);
  // %X (the access time) makes stat ask for it, as fstat does: what the stale mark affects
  return { inTime: r.inTime, out: r.out.trim().split(' ').slice(0, -1).join(' ') };
}

async function setup(t: { teardown(fn: () => unknown): void }) {
  const { client, dir } = await mountServer(t);
  await client.make(`/${dir.split('/').pop()}/c`, 'chan', { cap: 1 });
  return { dir };
}

t.test('attrs: a control file stat-ed right after a read is answered without JavaScript, and only while fresh', { skip }, async (t) => {
  const { dir } = await setup(t);
  const file = `${dir}/c/chan/peek`;
  t.equal((await stat(file)).mode & 0o777, 0o444);
  // The table is filled when JavaScript answers the file's getattr; the child has 0.1 s from
  // then. A machine too busy to start it in time gets two more tries.
  let fresh = { inTime: false, out: '' };
  for (let i = 0; i < 3 && !fresh.inTime; i++) {
    await new Promise((r) => setTimeout(r, 150)); // the kernel's entry and attributes expire
    await stat(file); // asks JavaScript again: the attributes are handed over anew
    fresh = await statWhileBlocked(file, 2000);
  }
  t.ok(fresh.inTime, 'the child\'s stat was answered while this thread was blocked');
  t.equal(fresh.out, '0 444 regular empty file', 'with the attributes JavaScript gave');

  await new Promise((r) => setTimeout(r, 250)); // the table's entry has expired (0.1 s)
  await readFile(file); // the access time is stale again; the kernel will ask
  await new Promise((r) => setTimeout(r, 150));
  const stale = await statWhileBlocked(file, 300, false);
  t.notOk(stale.inTime, 'expired: the stat waited for JavaScript');
  t.equal(stale.out, '0 444 regular empty file', 'and was answered once the thread ran');
});

t.test('attrs: a removal through the mount forgets what the table held', { skip }, async (t) => {
  const { dir } = await setup(t);
  const file = `${dir}/c/chan/peek`;
  await readFile(file);
  await stat(file);
  await rmdir(`${dir}/c/chan`);
  await t.rejects(stat(file), { code: 'ENOENT' }, 'the removed element\'s file is gone at once');
});
