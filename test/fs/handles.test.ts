import t from 'tap';
import type { OpenFile } from '../../src/fs/files/control';
import { ANSWER_SLOT, Handles } from '../../src/fs/handles';

/**
 * The no-flush table the mount shares with the patched fuse-native: slot fd % length holds fd
 * exactly while that open file has nothing to do at close, so a flush the binding answers by
 * itself is never one a file needed (a file with a flush, or a slot taken by another fd, goes
 * to JavaScript).
 */
const open = (file: OpenFile) => ({ path: '/p', pid: 1, fresh: true, anchor: '/X', kind: 'chan', spec: { name: 'f', mode: 'r' as const, blocking: false, open: () => file }, file });

t.test('handles: the no-flush table lists exactly the open files with nothing to do at close', async (t) => {
  const table = new Int32Array(4);
  const hs = new Handles(table);
  const quiet = hs.add(open({ read: async () => Buffer.alloc(0) }));
  const judged = hs.add(open({ flush: async () => {} }));
  t.equal(table[quiet.fd % 4], quiet.fd, 'a file without flush is listed');
  t.not(table[judged.fd % 4], judged.fd, 'a file with a flush is not');
  // Fill the slots round: fd 5 shares fd 1's slot.
  const more = [hs.add(open({})), hs.add(open({})), hs.add(open({ flush: async () => {} }))];
  t.same(more.map((h) => h.fd), [3, 4, 5]);
  t.equal(table[1], 1, 'a file with a flush never takes a slot from one listed');
  hs.delete(1);
  t.equal(table[1], 0, 'released: the slot is free');
  const six = hs.add(open({}));
  t.equal(table[six.fd % 4], six.fd);
  hs.delete(judged.fd);
  t.equal(table[six.fd % 4], six.fd, 'releasing another fd leaves a slot alone');
  const seven = hs.add(open({}));
  t.equal(seven.fd, 7);
  hs.delete(3);
  t.equal(table[3], seven.fd, 'a slot taken over by a later fd is not cleared by the earlier one');
  t.equal(table[0], 4);
});

t.test('handles: without a table (unpatched fuse-native) nothing is listed', async (t) => {
  const hs = new Handles();
  t.equal(hs.add(open({})).fd, 1);
  t.equal(hs.delete(1)?.fd, 1);
});

t.test('handles: the answers table holds an open file\'s whole answer while it is open, never over another\'s', async (t) => {
  const slots = 2;
  const table = new Int32Array((slots * ANSWER_SLOT) / 4);
  const bytes = Buffer.from(table.buffer);
  const slot = (fd: number) => ((fd % slots) * ANSWER_SLOT) / 4;
  const hs = new Handles(undefined, table);
  let later: Buffer | undefined;
  const peek = hs.add(open({ answered: () => Buffer.from('{"Cap":1}\n') }));
  t.equal(peek.fd, 1);
  t.equal(table[slot(1)], 1, 'a snapshot is listed at open');
  t.equal(table[slot(1) + 1], 10, 'with its length');
  t.equal(bytes.toString('utf8', slot(1) * 4 + 8, slot(1) * 4 + 18), '{"Cap":1}\n', 'and its bytes');
  const recv = hs.add(open({ answered: () => later }));
  t.equal(table[slot(2)], 0, 'nothing before the answer is there');
  later = Buffer.from('hello');
  hs.offer(recv);
  t.equal(table[slot(2)], 2, 'listed once it is');
  const big = hs.add(open({ answered: () => Buffer.alloc(ANSWER_SLOT - 7) }));
  t.equal(table[slot(big.fd)], 1, 'an answer too long for a slot leaves it alone, and another open\'s slot is never taken');
  hs.delete(1);
  t.equal(table[slot(1)], 0, 'released: the slot is free');
  const fits = hs.add(open({ answered: () => Buffer.alloc(ANSWER_SLOT - 8, 1) }));
  t.equal(fits.fd, 4);
  t.equal(table[slot(4)], 2, 'fd 4 shares fd 2\'s slot: not listed');
  hs.delete(2);
  hs.offer(fits);
  t.equal(table[slot(4)], 4, 'once free, the slot takes the longest answer that fits');
  hs.delete(3);
  t.equal(table[slot(4)], 4, 'releasing another fd of that slot leaves it alone');
  hs.delete(4);
  hs.offer(fits);
  t.equal(table[slot(4)], 0, 'a released file is not listed again');
});
