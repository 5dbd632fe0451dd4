import t from 'tap';
import { BroadcastQueue } from '../../src/cluster/broadcast-queue';

const b = (s: string) => Buffer.from(s);

t.test('broadcast queue: newer news about a member replaces the older', async (t) => {
  const q = new BroadcastQueue(() => 3);
  q.push('x', b('x-old'));
  q.push('y', b('y1'));
  q.push('x', b('x-new'));
  t.equal(q.length, 2);
  const got = q.take(1000).map(String);
  t.same(got.sort(), ['x-new', 'y1']);
});

t.test('broadcast queue: each item is sent limit times, then dropped', async (t) => {
  let limit = 3;
  const q = new BroadcastQueue(() => limit);
  q.push('x', b('x'));
  for (let i = 0; i < 3; i++) t.same(q.take(100).map(String), ['x'], `send ${i + 1}`);
  t.same(q.take(100), []);
  t.equal(q.length, 0);
  limit = 1;
  q.push('y', b('y'));
  t.same(q.take(100).map(String), ['y']);
  t.equal(q.length, 0, 'the limit follows the cluster size');
});

t.test('broadcast queue: fewest-sent first, newest first among equals', async (t) => {
  const q = new BroadcastQueue(() => 10);
  q.push('a', b('a'));
  t.same(q.take(1).map(String), ['a']);
  q.push('b', b('b'));
  q.push('c', b('c'));
  t.same(q.take(2).map(String), ['c', 'b'], 'fresh items first, newest first');
  // all three were sent once now; among equals the most recently (re)filed goes first
  t.same(q.take(3).map(String), ['b', 'c', 'a']);
});

t.test('broadcast queue: respects the byte budget and skips items that do not fit', async (t) => {
  const q = new BroadcastQueue(() => 5);
  q.push('big', Buffer.alloc(100));
  q.push('small', Buffer.alloc(10));
  const got = q.take(50);
  t.equal(got.length, 1);
  t.equal(got[0]!.length, 10);
  t.equal(q.take(0).length, 0);
  const more = q.take(200);
  t.same(more.map((x) => x.length).sort((x, y) => x - y), [10, 100]);
});

t.test('broadcast queue: skip leaves out the item about one key', async (t) => {
  const q = new BroadcastQueue(() => 5);
  q.push('a', b('a'));
  q.push('b', b('b'));
  t.same(q.take(100, 'a').map(String), ['b']);
  t.ok(q.has('a'));
});

t.test('broadcast queue: many items stay cheap and all get sent limit times', async (t) => {
  const q = new BroadcastQueue(() => 4);
  for (let i = 0; i < 5000; i++) q.push(`k${i % 2000}`, Buffer.alloc(50));
  t.equal(q.length, 2000);
  let sent = 0;
  for (;;) {
    const got = q.take(1400);
    if (got.length === 0) break;
    t.ok(got.reduce((s, x) => s + x.length, 0) <= 1400);
    sent += got.length;
  }
  t.equal(sent, 2000 * 4);
  t.equal(q.length, 0);
});
