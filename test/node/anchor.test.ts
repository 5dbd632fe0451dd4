import t from 'tap';
import { AnchorTree, splitPath } from '../../src/node/anchor';
import { Server } from '../../src/node/server';
import { bind, type Element } from '../../src/node/element';

const dummy = (): Element => bind({ kind: 'chan', verbs: {} }, { peek: () => null, scrub: () => {} });

t.test('anchor: walk creates every missing anchor on the way', async (t) => {
  const tree = new AnchorTree('X0000000000000001');
  const a = tree.walk(['a', 'b', 'c']);
  t.equal(a.path, '/a/b/c');
  t.equal(a.name, 'c');
  t.ok(tree.root.children.get('a')?.children.get('b')?.children.get('c') === a);
  t.equal(tree.walk(['a', 'b', 'c']), a, 'walking again finds the same anchor');
});

t.test('anchor: find does not create', async (t) => {
  const tree = new AnchorTree('X0000000000000001');
  t.equal(tree.find(['a', 'b']), undefined);
  t.equal(tree.root.children.size, 0, 'nothing was created');
  t.equal(tree.find([]), tree.root, 'the empty path is the server anchor');
});

t.test('anchor: collect removes an empty anchor and cascades up', async (t) => {
  const tree = new AnchorTree('X0000000000000001');
  const c = tree.walk(['a', 'b', 'c']);
  tree.collect(c);
  t.equal(tree.root.children.size, 0, 'a, b and c all went');
});

t.test('anchor: collect stops at a parent with another child or an element', async (t) => {
  const tree = new AnchorTree('X0000000000000001');
  const c = tree.walk(['a', 'b', 'c']);
  tree.walk(['a', 'other']).element = dummy();
  tree.collect(c);
  t.ok(tree.find(['a']), 'a stays: it has another child');
  t.notOk(tree.find(['a', 'b']), 'b went');
  const e = tree.walk(['x', 'y']);
  e.element = dummy();
  tree.collect(e);
  t.ok(tree.find(['x', 'y']), 'an anchor with an element is not collected');
  e.element = undefined;
  tree.collect(e);
  t.notOk(tree.find(['x']), 'once empty it goes, with its parent');
});

t.test('anchor: holds keep an empty anchor', async (t) => {
  const tree = new AnchorTree('X0000000000000001');
  const a = tree.walk(['held', 'leaf']);
  a.holds++;
  tree.collect(a);
  t.ok(tree.find(['held', 'leaf']), 'held anchor stays');
  a.holds--;
  tree.collect(a);
  t.notOk(tree.find(['held']), 'released: it and its parent go');
});

t.test('anchor: using holds the anchor for the call and collects afterwards', async (t) => {
  const tree = new AnchorTree('X0000000000000001');
  await tree.using(['u', 'v'], async (a) => {
    tree.collect(a);
    t.ok(tree.find(['u', 'v']), 'not collected while in use');
  });
  t.notOk(tree.find(['u']), 'collected after the call');
  await t.rejects(tree.using(['w'], async () => { throw new Error('boom'); }), /boom/);
  t.notOk(tree.find(['w']), 'collected after a failed call too');
});

t.test('anchor: the server anchor is never collected', async (t) => {
  const tree = new AnchorTree('X0000000000000001');
  tree.collect(tree.root);
  t.equal(tree.find([]), tree.root);
});

t.test('anchor: one element per anchor (through the server)', async (t) => {
  const s = new Server({ stderr: () => {} });
  t.teardown(() => s.shutdown());
  const p = `/${s.id}/one`;
  await s.make(p, 'chan', { cap: 1 });
  await t.rejects(s.make(p, 'chan', { cap: 2 }), { message: 'anchor already has an element', code: 'EBUSY' });
  await t.rejects(s.make(p, '@join', null), { message: 'anchor already has an element' });
  t.same(await s.peek(p), { Cap: 1, Closed: false, Aborted: false, NumSend: 0, NumRecv: 0 }, 'the first element is untouched');
});

t.test('anchor: two concurrent makes on one anchor: exactly one wins', async (t) => {
  const s = new Server({ stderr: () => {} });
  t.teardown(() => s.shutdown());
  const p = `/${s.id}/race`;
  const r = await Promise.allSettled([s.make(p, 'chan', { cap: 1 }), s.make(p, 'chan', { cap: 2 }), s.make(p, '@join', null)]);
  t.equal(r.filter((x) => x.status === 'fulfilled').length, 1);
});

t.test('anchor: odd components are literal names', async (t) => {
  t.same(splitPath('//x///y/'), ['x', 'y'], 'empty components are dropped');
  t.same(splitPath('/a/../b'), ['a', '..', 'b']);
  t.same(splitPath('/a/./b'), ['a', '.', 'b']);
  t.same(splitPath('/with space/ünï ☃'), ['with space', 'ünï ☃']);
  const tree = new AnchorTree('X0000000000000001');
  const a = tree.walk(splitPath('/a/../b'));
  t.equal(a.path, '/a/../b', 'no normalisation');
  t.ok(tree.find(['a', '..', 'b']));
  t.notOk(tree.find(['b']), 'b is not a sibling of a');
  const s = new Server({ stderr: () => {} });
  t.teardown(() => s.shutdown());
  for (const odd of ['a/../b', 'a/./c', 'sp ace/x', 'ünï/☃', '...x', '..']) {
    await s.make(`/${s.id}/${odd}`, 'chan', { cap: 0 });
  }
  const top = (await s.list(`/${s.id}`)).map((e) => e.name);
  t.same(top, ['...x', '..', 'a', 'sp ace', 'ünï'].sort());
  t.same((await s.list(`/${s.id}/a`)).map((e) => e.path), [`/${s.id}/a/.`, `/${s.id}/a/..`]);
  t.equal((await s.list(`/${s.id}/ünï`))[0].path, `/${s.id}/ünï/☃`);
  t.equal((await s.peek(`/${s.id}/a/../b`) as { Cap: number }).Cap, 0);
  t.equal(await s.peek(`/${s.id}/b`), null);
});
