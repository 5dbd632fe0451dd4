import t from 'tap';
import { outputStream, recvOrGiveBack } from '../../src/fs/files/stream';
import type { Ctx } from '../../src/fs/files/control';
import type { Client } from '../../src/api/types';
import { OutputBuffer } from '../../src/node/output-buffer';

/**
 * A caller interrupted while its answer was on the way (a signal between two polls of the
 * watch) must not take the answer with it: the mount gives it back and answers EINTR.
 */
function ctx(client: Partial<Client>, interrupted: boolean): Ctx {
  return {
    client: client as Client, anchor: '/X0000000000000001/a', kind: 'proc', call: {},
    lastError: () => '', interrupted: () => interrupted,
  };
}

t.test('giveback: stdout bytes read for an interrupted caller stay for the next reader', async (t) => {
  const buf = new OutputBuffer('stdout');
  buf.push(Buffer.from('precious'));
  buf.end();
  const client = { openOutput: async () => buf.acquire() };
  const f = outputStream('stdout').open(0, ctx(client, false));
  await t.rejects(f.read!(100, 0, ctx(client, true)), { code: 'EINTR' });
  await f.release?.(ctx(client, false));
  const g = outputStream('stdout').open(0, ctx(client, false));
  t.equal((await g.read!(100, 0, ctx(client, false))).toString(), 'precious', 'the next reader gets every byte');
  t.equal((await g.read!(100, 0, ctx(client, false))).length, 0, 'then the end');
});

t.test('giveback: a message received for an interrupted caller goes back first', async (t) => {
  const back: string[] = [];
  const client = {
    recv: async () => Buffer.from('m1'),
    unrecv: async (_p: string, m: Buffer) => void back.push(m.toString()),
  };
  await t.rejects(recvOrGiveBack(ctx(client, true)), { code: 'EINTR' });
  t.same(back, ['m1']);
  t.equal((await recvOrGiveBack(ctx(client, false))).toString(), 'm1', 'a live caller keeps it');
  t.same(back, ['m1'], 'and nothing more is given back');
});

t.test('giveback: a stream read answered without waiting goes back when its reader dies before writing it', async (t) => {
  const buf = new OutputBuffer('stdout');
  const client = { openOutput: async () => buf.acquire() };
  const f = outputStream('stdout').open(0, ctx(client, false));
  const into = Buffer.alloc(4);
  const wrote = () => ({ pid: 7, wrote: 100 });
  t.equal(f.readInto!(into, 4, wrote), undefined, 'no lease yet: the read that waits takes it');
  const first = f.read!(4, 0, ctx(client, false));
  t.equal(f.readInto!(into, 4, wrote), undefined, 'a read is waiting: none overtakes it');
  buf.push(Buffer.from('abcdefghij'));
  t.equal((await first).toString(), 'abcd');
  t.equal(f.readInto!(into, 4, wrote), 4, 'bytes here: answered at once');
  t.equal(into.toString(), 'efgh');
  // The reader dies of a signal having written nothing since: those four bytes stay.
  const dying = { ...ctx(client, false), progress: () => ({ pid: 7, wrote: 100, dying: true }) };
  await f.flush!(dying);
  await f.release!(dying);
  const g = outputStream('stdout').open(0, ctx(client, false));
  buf.end();
  t.equal((await g.read!(100, 0, ctx(client, false))).toString(), 'efghij', 'the next reader gets them, and the rest');
  t.equal(g.readInto!(into, 4, wrote), 0, 'then the end, at once');
});
