import t from 'tap';
import { startServer, cli, type Running } from '../helpers/daemon';

/** Anchors and the listing, through the real CLI against a real daemon (docs/cli.md). */
let d: Running;
const c = (args: string[], input?: string) => cli(d.url, args, input);

t.before(async () => {
  d = await startServer();
});
t.teardown(() => d.stop());

t.test('anchors: ls / lists the server anchor', async (t) => {
  const r = await c(['ls', '/']);
  t.equal(r.code, 0);
  t.equal(r.stdout, `/${d.id}\n`);
  t.match(d.id, /^X[0-9a-f]{16}$/);
  const l = await c(['ls', '-l', '/']);
  t.equal(l.stdout, `${'server'.padEnd(15)} /${d.id}\n`);
});

t.test('anchors: ls prints absolute sorted paths; -l the kind in 15 columns and a space', async (t) => {
  const base = `/${d.id}/ls`;
  t.equal((await c(['mkchan', `${base}/b`, '1'])).code, 0);
  t.equal((await c(['mkchan', `${base}/a/deep`, '0'])).code, 0);
  t.equal((await c(['mk@join', `${base}/Z`])).code, 0);
  const r = await c(['ls', base]);
  t.equal(r.code, 0);
  t.equal(r.stdout, `${base}/Z\n${base}/a\n${base}/b\n`, 'byte order: upper case first');
  const l = await c(['ls', '-l', base]);
  t.equal(l.stdout, [`@join           ${base}/Z`, `·               ${base}/a`, `chan            ${base}/b`].join('\n') + '\n', '· for an empty anchor');
  for (const line of l.stdout.trimEnd().split('\n')) t.equal([...line.slice(0, [...line].indexOf('/'))].length, 16, 'kind field is 15 wide + a space');
});

t.test('anchors: ls PATH/... is recursive, --de puts children before their parent', async (t) => {
  const base = `/${d.id}/rec`;
  await c(['mkchan', `${base}/x/y/z`, '0']);
  await c(['mkchan', `${base}/x/w`, '0']);
  const r = await c(['ls', `${base}/...`]);
  t.equal(r.stdout, [`${base}/x`, `${base}/x/w`, `${base}/x/y`, `${base}/x/y/z`].join('\n') + '\n');
  const de = await c(['ls', '--de', `${base}/...`]);
  t.equal(de.stdout, [`${base}/x/w`, `${base}/x/y/z`, `${base}/x/y`, `${base}/x`].join('\n') + '\n');
  const del = await c(['ls', '-l', '--de', `${base}/...`]);
  t.equal(del.stdout.split('\n')[0], `chan            ${base}/x/w`);
  const single = await c(['ls', '-l', '-de', `${base}/...`]);
  t.equal(single.stdout, del.stdout, 'the single-dash form -de works too');
});

t.test('anchors: ls of a path that does not exist prints nothing and exits 0', async (t) => {
  const r = await c(['ls', `/${d.id}/never/made`]);
  t.equal(r.code, 0);
  t.equal(r.stdout, '');
  t.equal((await c(['ls', `/${d.id}`])).stdout.includes('never'), false, 'ls created nothing');
});

t.test('anchors: peek of an empty path prints null', async (t) => {
  const r = await c(['peek', `/${d.id}/nothing/here`]);
  t.equal(r.code, 0);
  t.equal(r.stdout, 'null\n');
  t.equal(r.stderr, '');
  t.notMatch((await c(['ls', `/${d.id}`])).stdout, /nothing/, 'empty anchors are not persistent');
});

t.test('anchors: a second element on an anchor fails with the original text', async (t) => {
  const p = `/${d.id}/busy`;
  t.equal((await c(['mkchan', p, '1'])).code, 0);
  const r = await c(['mkchan', p, '2']);
  t.equal(r.code, 1);
  t.equal(r.stderr, 'circuit: mkchan error: anchor already has an element\n');
  t.equal(r.stdout, '');
  const j = await c(['mk@join', p]);
  t.equal(j.stderr, 'circuit: mk@join error: anchor already has an element\n');
  const pr = await c(['mkproc', p], JSON.stringify({ Path: 'true' }));
  t.equal(pr.stderr, 'circuit: mkproc error: anchor already has an element\n');
  t.match((await c(['peek', p])).stdout, /"Cap": 1/, 'the first element is untouched');
});

t.test('anchors: the server anchor already has an element; the root takes none', async (t) => {
  const r = await c(['mkchan', `/${d.id}`, '1']);
  t.equal(r.code, 1);
  t.equal(r.stderr, 'circuit: mkchan error: anchor already has an element\n');
  const root = await c(['mkchan', '/', '1']);
  t.equal(root.code, 1);
  t.equal(root.stderr, 'circuit: mkchan error: cannot create elements outside of servers\n');
});

t.test('anchors: scrub of an empty anchor, the server anchor or the root does nothing, exit 0', async (t) => {
  for (const p of [`/${d.id}/empty/thing`, `/${d.id}`, '/']) {
    const r = await c(['scrub', p]);
    t.equal(r.code, 0, p);
    t.equal(r.stderr, '', p);
  }
  t.match((await c(['peek', `/${d.id}`])).stdout, /"Addr": "circuit:\/\//, 'the server element is still there');
});

t.test('anchors: scrub removes the element and its empty anchors; the path takes a new one at once', async (t) => {
  const p = `/${d.id}/this/is/charlie`;
  await c(['mkchan', p, '3']);
  t.equal((await c(['scrub', p])).code, 0);
  t.equal((await c(['peek', p])).stdout, 'null\n');
  t.notMatch((await c(['ls', `/${d.id}`])).stdout, /this/, 'the empty parents went too');
  t.equal((await c(['mkchan', p, '0'])).code, 0);
  t.match((await c(['peek', p])).stdout, /"Cap": 0/);
});

t.test('anchors: odd components are literal: .., ., spaces, unicode', async (t) => {
  const base = `/${d.id}/odd`;
  for (const p of [`${base}/a/../b`, `${base}/a/./c`, `${base}/with space`, `${base}/ünï ☃`]) {
    const r = await c(['mkchan', p, '0']);
    t.equal(r.code, 0, `mkchan ${p}: ${r.stderr}`);
    t.match((await c(['peek', p])).stdout, /"Cap": 0/, `peek ${p}`);
  }
  t.equal((await c(['peek', `${base}/b`])).stdout, 'null\n', '.. is not normalised');
  const r = await c(['ls', `${base}/...`]);
  t.equal(r.stdout, [`${base}/a`, `${base}/a/.`, `${base}/a/./c`, `${base}/a/..`, `${base}/a/../b`, `${base}/with space`, `${base}/ünï ☃`].join('\n') + '\n');
  t.equal((await c(['peek', `//${d.id}///odd//with space/`])).stdout.includes('"Cap": 0'), true, 'empty components are dropped');
});

t.test('anchors: a trailing /... is dropped by every command but ls', async (t) => {
  const r = await c(['mkchan', `/${d.id}/dots/t/...`, '1']);
  t.equal(r.code, 0);
  t.match((await c(['peek', `/${d.id}/dots/t`])).stdout, /"Cap": 1/, 'made at /t');
});

t.test('anchors: a path under an unknown server fails clearly', async (t) => {
  const r = await c(['peek', '/X0000000000000000/a']);
  t.equal(r.code, 1);
  t.match(r.stderr, /^circuit: .*missing server or misspelled anchor/);
  t.equal(r.stderr.split('\n').length, 2, 'one line');
});

t.test('anchors: concurrent makes on one anchor: exactly one wins', async (t) => {
  const p = `/${d.id}/contended`;
  const rs = await Promise.all([c(['mkchan', p, '1']), c(['mkchan', p, '2']), c(['mk@join', p]), c(['mkproc', p], JSON.stringify({ Path: 'true' }))]);
  t.equal(rs.filter((r) => r.code === 0).length, 1, 'one make succeeded');
  for (const r of rs.filter((x) => x.code !== 0)) t.match(r.stderr, /^circuit: mk[a-z@]+ error: anchor already has an element\n$/);
});

t.test('anchors: the daemon is alive after all of this', async (t) => {
  t.equal(d.proc.exitCode, null);
  t.equal((await c(['ls', '/'])).stdout, `/${d.id}\n`);
});
