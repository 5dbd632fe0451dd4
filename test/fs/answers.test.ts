import { dirname } from 'path';
import { open, readFile, writeFile } from 'fs/promises';
import t from 'tap';
import { childWhileBlocked, mountServer } from './helpers';

/**
 * The patched fuse-native answers the reads of an open file whose whole answer is known (a
 * snapshot rendered at open, a recv's message once taken) on its FUSE thread, from the table
 * the mount shares with it (src/fs/handles.ts, patches/fuse-native-answers.patch). Seen here by
 * reading in a child process while this process's JavaScript thread is blocked.
 */
// eslint-disable-next-line @typescript-eslint/no-var-requires
const binding = require('node-gyp-build')(dirname(require.resolve('fuse-native/package.json'))) as Record<string, unknown>;
const skip = typeof binding.fuse_native_answers !== 'function' && 'fuse-native is not patched with fuse-native-answers.patch (scripts/patch-fuse-native.sh)';

/**
 * Reads fd to its end in a child process (as its fd 3, which node never fstats) while this
 * thread is blocked, up to 10 s: whether the child wrote what it read before that.
 */
function readWhileBlocked(fd: number): Promise<{ inTime: boolean; out: string }> {
  return childWhileBlocked(process.execPath, ['-e', `
    const fs = require('fs'); const b = Buffer.alloc(65536); const parts = []; let n;
    while ((n = fs.readSync(3, b, 0, b.length, null)) > 0) parts.push(Buffer.from(b.subarray(0, n)));
    fs.writeFileSync(process.argv[1] + '.tmp', Buffer.concat(parts)); fs.renameSync(process.argv[1] + '.tmp', process.argv[1]);`], 10_000, ['ignore', 'ignore', 'inherit', fd]);
}

const setup = mountServer;

t.test('answers: a snapshot opened here is read to its end with this process blocked', { skip }, async (t) => {
  const { dir } = await setup(t);
  const fh = await open(`${dir}/server/peek`, 'r');
  try {
    const r = await readWhileBlocked(fh.fd);
    t.ok(r.inTime, 'read to the end with this thread blocked');
    t.match(JSON.parse(r.out), { Id: dir.split('/').pop() }, 'the whole peek');
  } finally {
    await fh.close();
  }
});

t.test('answers: after a recv took its message, the rest and EOF need no JavaScript', { skip }, async (t) => {
  const { client, dir } = await setup(t);
  await client.make(`/${dir.split('/').pop()}/c`, 'chan', { cap: 1 });
  await writeFile(`${dir}/c/chan/send`, 'hello, world\n');
  const fh = await open(`${dir}/c/chan/recv`, 'r');
  try {
    const first = await fh.read(Buffer.alloc(5), 0, 5, null);
    t.equal(first.buffer.subarray(0, first.bytesRead).toString(), 'hello', 'the first read took the message (in JavaScript)');
    const r = await readWhileBlocked(fh.fd);
    t.ok(r.inTime, 'read to the end with this thread blocked');
    t.equal(r.out, ', world\n', 'the rest of the message, then EOF');
  } finally {
    await fh.close();
  }
  t.match(JSON.parse(await readFile(`${dir}/c/chan/peek`, 'utf8')), { NumRecv: 1 }, 'one message taken');
});
