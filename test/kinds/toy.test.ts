import t from 'tap';
import * as fs from 'node:fs';
import { KINDS } from '../../src/node/kinds';
import { defineKind } from '../../src/node/element';
import { startDaemon } from '../../src/node/daemon';
import { LocalClient } from '../../src/client/local';
import { connect } from '../../src/client/remote';
import { Routes } from '../../src/fs/routes';
import { FS_KINDS } from '../../src/fs/kinds';
import { mount } from '../../src/fs/mount';
import { cli } from '../helpers/daemon';
import { tmpDir } from '../helpers/tmp';
import { sh } from '../fs/helpers';
import { mknote, noteFiles, noteKind } from '../fixtures/note-kind';

/**
 * docs/kinds.md's promise: a kind is its node module, its file table and its CLI row, plus a line
 * in the registration lists. The toy kind of test/fixtures/note-kind.ts is registered here (the
 * lists given as options instead of edited) and driven through the mount, the CLI and the wire.
 */
t.test('kinds: a toy kind from a fixture works through the mount, the CLI and the wire', async (t) => {
  const dir = tmpDir('circuit-toy-');
  const d = await startDaemon({ varDir: `${dir}/var`, stderr: () => {}, kinds: [...KINDS, defineKind(noteKind)] });
  t.teardown(() => d.close());
  const mnt = `${dir}/mnt`;
  fs.mkdirSync(mnt);
  const m = await mount(new LocalClient(d.server, { via: 'mount' }), mnt, { routes: new Routes([...FS_KINDS, { kind: 'note', files: noteFiles }]) });
  t.teardown(() => m.unmount());
  const X = d.server.id;

  // The mount: mkdir makes it from its defaultSpec; its files, help and error come from its table.
  const r = await sh(`S=${mnt}/${X}; mkdir -p $S/n/note && cd $S/n/note && ls && echo hello > text && cat text && grep -c . help && cat peek`);
  t.equal(r.code, 0, r.stderr);
  t.same(r.stdout.split('\n').slice(0, 6), ['error', 'help', 'peek', 'text', 'hello', '4']);
  t.match(JSON.parse(r.stdout.split('\n').slice(6).join('\n')), { Text: 'hello', Writes: 1 });

  // Its CLI row, run on a client that dialled the daemon, as bin/circuit runs every row.
  const c = await connect(d.url, { via: 'cli' });
  t.teardown(() => c.disconnect());
  await mknote.run(c, [`/${X}/m`, 'first'], {});
  await t.rejects(mknote.run(c, [`/${X}/m`], {}), { message: 'anchor already has an element' });

  // The generic commands through the real CLI: no line of theirs knows the kind.
  t.equal((await cli(d.url, ['ls', '-l', `/${X}/m`.replace(/\/m$/, '')])).stdout.split('\n').filter((l) => l.startsWith('note')).length, 2);
  t.equal((await cli(d.url, ['recv', `/${X}/m`])).stdout, 'first');
  t.equal((await cli(d.url, ['send', `/${X}/m`], 'second')).code, 0);
  t.equal((await cli(d.url, ['recv', `/${X}/m`])).stdout, 'second');
  t.match(JSON.parse((await cli(d.url, ['peek', `/${X}/m`])).stdout), { Text: 'second', Writes: 1 });
  const wrong = await cli(d.url, ['wait', `/${X}/m`]);
  t.equal(wrong.stderr, 'circuit: wait error: anchor is not a process or a docker container\n', 'a verb it lacks: the verb\'s usual answer');
  t.equal((await cli(d.url, ['scrub', `/${X}/m`])).code, 0);
  t.equal((await cli(d.url, ['peek', `/${X}/m`])).stdout.trim(), 'null');

  // A server without the kind in its list refuses it by name.
  const d2 = await startDaemon({ varDir: `${dir}/var2`, stderr: () => {} });
  t.teardown(() => d2.close());
  await t.rejects(d2.server.make(`/${d2.server.id}/x`, 'note', null), { code: 'ENOTSUP', message: 'unknown element kind note' });
});
