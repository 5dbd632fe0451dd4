import { readFileSync, writeFileSync } from 'fs';
import { join } from 'path';
import t from 'tap';
import { cli, startServer } from '../helpers/daemon';
import { daemonMount, eventually } from './helpers';

/**
 * FS.md's "Shell equivalents of the CLI", row by row, against one real daemon: the CLI command
 * (`circuit … -d URL`) and its shell equivalent on the mount give the same result. Where a row
 * makes something, the CLI makes one and the shell another, and both are observed both ways.
 * Then the other coreutils the issue names: head -c, tail -f, find, timeout, kill.
 */
const env = daemonMount(t);

async function setup() {
  const e = await env;
  const X = e.X;
  const c = async (...args: string[]) => {
    const r = await cli(e.url, args);
    return r;
  };
  const run = (script: string) => e.run(`set -u; st() { echo "rc=$?"; }; ${script}`);
  return { ...e, X, c, run };
}

/** A peek with the fields that differ between two otherwise equal elements taken out. */
function norm(text: string, drop: string[] = ['Pid']): unknown {
  const v = JSON.parse(text) as Record<string, unknown>;
  for (const k of drop) delete v[k];
  return v;
}

t.test('shell = CLI: ls', async (t) => {
  const { X, c, run } = await setup();
  const mk = await run('mkdir -p $S/l/a $S/l/b/c/d $S/l/e/chan && echo ok');
  t.equal(mk.stdout, 'ok\n', mk.stderr);
  const viaCli = await c('ls', `/${X}/l`);
  const viaSh = await run('ls $S/l');
  t.equal(viaCli.code, 0, viaCli.stderr);
  t.same(viaCli.stdout.split('\n').filter(Boolean).map((p) => p.split('/').pop()), viaSh.stdout.split('\n').filter(Boolean));
  t.same(viaSh.stdout, 'a\nb\ne\n');
  // The root: the servers.
  const root = await c('ls', '/');
  const rootSh = await run('ls $M');
  t.same(root.stdout.split('\n').filter(Boolean).map((p) => p.slice(1)), rootSh.stdout.split('\n').filter(Boolean));
  // Recursive listing and find: the same anchors (find also shows elements and their files).
  const rec = await c('ls', `/${X}/l/...`);
  const found = await run(`cd $S && find l -mindepth 1 -type d | grep -vE '/(chan|proc|dns|docker|@join|@leave)(/|$)' | sort`);
  t.same(rec.stdout.split('\n').filter(Boolean).map((p) => p.slice(`/${X}/`.length)).sort(), found.stdout.split('\n').filter(Boolean));
  // An anchor holding an element: `ls -l` names the kind, ls shows its directory.
  const long = await c('ls', '-l', `/${X}/l`);
  t.match(long.stdout, new RegExp(`^chan\\s+/${X}/l/e$`, 'm'), long.stdout + long.stderr);
  t.equal((await run('ls $S/l/e')).stdout, 'chan\n');
});

t.test('shell = CLI: mkchan, send, recv, close, peek', async (t) => {
  const { X, c, run, base } = await setup();
  // mkchan
  t.equal((await c('mkchan', `/${X}/m1/ch`, '3')).code, 0);
  const mk = await run('mkdir -p $S/m2/ch/chan && echo 3 > $S/m2/ch/chan/cap; st');
  t.equal(mk.stdout, 'rc=0\n', mk.stderr);
  const peeks = async () => {
    const r = await Promise.all([c('peek', `/${X}/m1/ch`), c('peek', `/${X}/m2/ch`), run('cat $S/m1/ch/chan/peek'), run('cat $S/m2/ch/chan/peek')]);
    return r.map((x) => x.stdout);
  };
  let [p1, p2, s1, s2] = await peeks();
  t.equal(p1, p2, 'the two channels are alike');
  t.equal(p1, s1, 'peek: the CLI and cat print the same text');
  t.equal(p2, s2);
  t.match(JSON.parse(p1), { Cap: 3, Closed: false, NumSend: 0, NumRecv: 0 });

  // send: the same bytes, binary and several lines, one message each way.
  const msg = Buffer.concat([Buffer.from('first line\nsecond\n\x00\x01\xff binary\n'), Buffer.alloc(70_000, 'z')]);
  const file = join(base, 'msg');
  writeFileSync(file, msg);
  t.equal((await cli((await env).url, ['send', `/${X}/m1/ch`], msg)).code, 0);
  t.equal((await run(`cat ${file} > $S/m2/ch/chan/send; st`)).stdout, 'rc=0\n');
  // recv: the CLI receives what the shell sent and the shell what the CLI sent.
  const got = await cli((await env).url, ['recv', `/${X}/m2/ch`]);
  t.ok(got.out.equals(msg), `CLI recv got the shell's message whole (${got.out.length} bytes)`);
  const gotSh = await run(`cat $S/m1/ch/chan/recv > ${base}/got; cmp ${base}/got ${file} && echo same`);
  t.equal(gotSh.stdout, 'same\n', gotSh.stderr);
  t.ok(readFileSync(join(base, 'got')).equals(msg));
  [p1, p2, s1, s2] = await peeks();
  t.equal(p1, p2);
  t.equal(p1, s1);
  t.match(JSON.parse(p1), { NumSend: 1, NumRecv: 1 });

  // close
  t.equal((await c('close', `/${X}/m1/ch`)).code, 0);
  t.equal((await run('echo > $S/m2/ch/chan/close; st')).stdout, 'rc=0\n');
  [p1, p2, s1, s2] = await peeks();
  t.equal(p1, p2);
  t.equal(p1, s1);
  t.match(JSON.parse(p1), { Closed: true });
  // And both refuse a send afterwards.
  const after = await cli((await env).url, ['send', `/${X}/m2/ch`], 'late');
  t.equal(after.code, 1);
  t.match(after.stderr, /closed/);
  const afterSh = await run('echo late > $S/m1/ch/chan/send; st');
  t.equal(afterSh.stdout, 'rc=1\n');
  t.match(afterSh.stderr, /Broken pipe/);
});

t.test('shell = CLI: mkproc, stdout, wait, peek', async (t) => {
  const { X, c, run, base } = await setup();
  const cmd = JSON.stringify({ Path: '/bin/sh', Args: ['-c', 'echo out; echo err >&2; echo more; exit 3'] });
  const file = join(base, 'c.json');
  writeFileSync(file, cmd);
  t.equal((await cli((await env).url, ['mkproc', `/${X}/p1`], cmd)).code, 0);
  t.equal((await run(`mkdir -p $S/p2/proc && cat ${file} > $S/p2/proc/cmd; st`)).stdout, 'rc=0\n');
  const out1 = await c('stdout', `/${X}/p1`);
  const out2 = await run('cat $S/p2/proc/stdout');
  t.equal(out1.stdout, 'out\nmore\n');
  t.equal(out2.stdout, out1.stdout, 'stdout: the same bytes');
  const err1 = await c('stderr', `/${X}/p1`);
  t.equal(err1.stdout, (await run('cat $S/p2/proc/stderr')).stdout, 'stderr too');
  const w1 = await c('wait', `/${X}/p1`);
  const w2 = await run('cat $S/p2/proc/wait');
  t.same(norm(w2.stdout), norm(w1.stdout), 'wait: the same final state (but the pid)');
  t.match(JSON.parse(w1.stdout), { Phase: 'exited', ExitCode: 3 });
  // peek of one element by both: the same text.
  for (const p of ['p1', 'p2']) {
    t.equal((await c('peek', `/${X}/${p}`)).stdout, (await run(`cat $S/${p}/proc/peek`)).stdout, `peek ${p}`);
  }
  t.equal((await run('cat $S/p1/proc/exit $S/p2/proc/exit')).stdout, '3\n3\n');
});

t.test('shell = CLI: signal KILL, then scrub', async (t) => {
  const { X, c, run } = await setup();
  const cmd = JSON.stringify({ Path: '/bin/sleep', Args: ['100'] });
  t.equal((await cli((await env).url, ['mkproc', `/${X}/k1`], cmd)).code, 0);
  t.equal((await cli((await env).url, ['mkproc', `/${X}/k2`], cmd)).code, 0);
  t.equal((await c('signal', 'KILL', `/${X}/k1`)).code, 0);
  t.equal((await run('echo KILL > $S/k2/proc/signal; st')).stdout, 'rc=0\n');
  const w1 = await c('wait', `/${X}/k1`);
  const w2 = await run('cat $S/k2/proc/wait');
  t.same(norm(w2.stdout), norm(w1.stdout), 'the same end');
  t.match(JSON.parse(w1.stdout), { Phase: 'signaled', Signal: 'KILL' });
  t.equal((await run('cat $S/k1/proc/exit $S/k2/proc/exit')).stdout, '137\n137\n');

  // scrub
  t.equal((await c('scrub', `/${X}/k1`)).code, 0);
  t.equal((await run('rmdir $S/k2/proc; st')).stdout, 'rc=0\n');
  for (const k of ['k1', 'k2']) {
    t.equal((await c('peek', `/${X}/${k}`)).stdout.trim(), 'null', `${k}: nothing left (CLI)`);
    t.equal((await run(`ls -A $S/${k}; ls $S/${k}/proc 2>&1 | grep -c 'No such file'`)).stdout, '1\n', `${k}: nothing left (shell)`);
  }
});

t.test('shell = CLI: mkdns, set, unset', async (t) => {
  const { X, c, run } = await setup();
  t.equal((await c('mkdns', `/${X}/ns1`)).code, 0);
  t.equal((await run('mkdir -p $S/ns2/dns; st')).stdout, 'rc=0\n');
  const records = async () => {
    const r = await Promise.all([c('peek', `/${X}/ns1`), c('peek', `/${X}/ns2`), run('cat $S/ns1/dns/peek'), run('cat $S/ns2/dns/peek')]);
    return r.map((x) => norm(x.stdout, ['Address']));
  };
  let [a, b, sa, sb] = await records();
  t.same(a, b);
  t.same(a, sa);
  t.same(b, sb);
  t.equal((await c('set', `/${X}/ns1`, 'a.b. A 1.2.3.4')).code, 0);
  t.equal((await c('set', `/${X}/ns1`, 'c.d. A 5.6.7.8')).code, 0);
  t.equal((await run(`echo 'a.b. A 1.2.3.4' >> $S/ns2/dns/records; echo 'c.d. A 5.6.7.8' >> $S/ns2/dns/records; st`)).stdout, 'rc=0\n');
  [a, b, sa, sb] = await records();
  t.same(a, b, 'set: the same records');
  t.same(a, sa);
  t.match(a, { Records: { 'a.b.': ['a.b.\t3600\tIN\tA\t1.2.3.4'], 'c.d.': [/5\.6\.7\.8/] } });
  t.equal((await run('cat $S/ns1/dns/records')).stdout, (await run('cat $S/ns2/dns/records')).stdout);
  t.equal((await c('unset', `/${X}/ns1`, 'a.b.')).code, 0);
  t.equal((await run('echo a.b. > $S/ns2/dns/unset; st')).stdout, 'rc=0\n');
  [a, b, sa, sb] = await records();
  t.same(a, b, 'unset: the same records');
  t.same(a, sa);
  t.same(Object.keys((a as { Records: object }).Records), ['c.d.']);
});

t.test('shell = CLI: mk@join, recv', async (t) => {
  const { X, c, run } = await setup();
  t.equal((await c('mk@join', `/${X}/j1`)).code, 0);
  const r1 = await c('recv', `/${X}/j1`);
  const r2 = await run('mkdir -p $S/j2/@join && timeout 5 cat $S/j2/@join/recv');
  t.equal(r1.stdout, `/${X}\n`);
  t.equal(r2.stdout, r1.stdout, 'the same event');
  t.same(norm((await c('peek', `/${X}/j1`)).stdout, []), norm((await run('cat $S/j2/@join/peek')).stdout, []));
});

t.test('shell = CLI: join', async (t) => {
  const { X, url, run } = await setup();
  const b = await startServer(['--no-mount']);
  const c3 = await startServer(['--no-mount']);
  t.teardown(async () => {
    for (const d of [b, c3]) await Promise.race([d.stop('SIGKILL'), new Promise((r) => setTimeout(r, 3000))]);
  });
  // The shell: this server joins b's cluster.
  const r = await run(`echo 'join ${b.url}' > $S/server/ctl; st`);
  t.equal(r.stdout, 'rc=0\n', r.stderr);
  const two = [X, b.id].sort().join('\n') + '\n';
  await eventually(async () => (await run('ls $M')).stdout === two, 10_000).catch(() => {});
  t.equal((await run('ls $M')).stdout, two, 'the mount lists both');
  const viaB = await cli(b.url, ['ls', '/']);
  t.equal(viaB.stdout.replace(/\//g, ''), two, "and b's view agrees");
  // The CLI: the third server joins this one's cluster.
  const j = await cli(c3.url, ['join', `/${c3.id}`, url]);
  t.equal(j.code, 0, j.stderr);
  const three = [X, b.id, c3.id].sort().join('\n') + '\n';
  await eventually(async () => (await run('ls $M')).stdout === three, 10_000).catch(() => {});
  t.equal((await run('ls $M')).stdout, three, 'the mount lists all three');
  t.equal((await cli(c3.url, ['ls', '/'])).stdout.replace(/\//g, ''), three, 'the CLI on the newcomer agrees');
  const members = await run('cut -d" " -f1,3 $S/server/members');
  t.equal(members.stdout, three.split('\n').filter(Boolean).map((id) => `${id} alive\n`).join(''));
});

t.test('coreutils: head -c, tail -f, find, timeout, kill', async (t) => {
  const { X, c, run } = await setup();
  const slow = JSON.stringify({ Path: '/bin/sh', Args: ['-c', 'for i in 1 2 3 4 5 6 7 8; do echo line $i; sleep 0.3; done'] });
  // head -c takes the first bytes, as `circuit stdout | head -c` would.
  t.equal((await cli((await env).url, ['mkproc', `/${X}/h1`], JSON.stringify({ Path: '/bin/echo', Args: ['0123456789'] }))).code, 0);
  t.equal((await run('head -c 4 $S/h1/proc/stdout; st')).stdout, '0123rc=0\n');

  // tail -f: a stream reports size 0, so tail's default (the last 10 lines) reads to EOF first;
  // `tail -f -n +1` (unbuffered when its stdout is not a terminal) shows lines as they come.
  const tf = await run(`mkdir -p $S/t1/proc && echo '${slow}' > $S/t1/proc/cmd
    s=$(date +%s%N); timeout 2 stdbuf -o0 tail -f -n +1 $S/t1/proc/stdout; rc=$?; e=$(date +%s%N)
    echo "rc=$rc ms=$(( (e - s) / 1000000 ))"`);
  const lines = tf.stdout.split('\n').filter((l) => l.startsWith('line'));
  t.ok(lines.length >= 4 && lines.length <= 7, `tail -f showed the first lines as they came: ${JSON.stringify(lines)}`);
  t.same(lines, lines.map((_, i) => `line ${i + 1}`));
  t.match(tf.stdout, /rc=124 ms=(19|2[0-4])\d\d\n$/, 'timeout ended it after 2 s');
  // After the process ended, tail -f shows the rest (and keeps following); with what the
  // interrupted tail showed, that is every line once: it took no byte it did not show.
  await run('cat $S/t1/proc/exit');
  const tf2 = await run('timeout 1 tail -f $S/t1/proc/stdout; st');
  t.match(tf2.stdout, /rc=124\n$/);
  const rest = tf2.stdout.split('\n').filter((l) => l.startsWith('line'));
  t.same([...lines, ...rest], [1, 2, 3, 4, 5, 6, 7, 8].map((i) => `line ${i}`), 'every line exactly once across both tails');

  // find: anchors, elements and their files.
  t.equal((await run('mkdir -p $S/f/a/chan $S/f/b/c && echo ok')).stdout, 'ok\n');
  const found = await run('cd $S && find f | sort');
  t.equal(found.stdout, ['f', 'f/a', 'f/a/chan', ...['cap', 'close', 'error', 'help', 'peek', 'recv', 'send', 'tryrecv', 'trysend'].map((n) => `f/a/chan/${n}`), 'f/b', 'f/b/c'].join('\n') + '\n');
  const foundCli = await c('ls', `/${X}/f/...`);
  t.same(foundCli.stdout.split('\n').filter(Boolean).map((p) => p.slice(X.length + 2)).sort(), ['f/a', 'f/b', 'f/b/c']);
  t.match((await run(`find $M/${X} -maxdepth 1 | sort`)).stdout, new RegExp(`/${X}/server\\n`));

  // kill: a blocked `cat wait` killed answers at once (TERM: a non-interactive bash starts
  // background jobs with SIGINT ignored); the process and its wait are intact.
  const k = await run(`mkdir -p $S/w/proc && echo '{"Path":"/bin/sleep","Args":["1"]}' > $S/w/proc/cmd
    cat $S/w/proc/wait & p=$!
    for i in $(seq 100); do s=$(cut -d' ' -f1 /proc/$p/syscall 2>/dev/null); { [ "$s" = 0 ] || [ "$s" = 63 ]; } && break; sleep 0.01; done
    s=$(date +%s%N); kill -TERM $p; wait $p; rc=$?; e=$(date +%s%N); echo "rc=$rc ms=$(( (e - s) / 1000000 ))"
    grep -o '"Phase": "[a-z]*"' $S/w/proc/peek; cat $S/w/proc/exit`);
  const km = /rc=(\d+) ms=(\d+)/.exec(k.stdout);
  t.equal(km?.[1], '143', k.stdout + k.stderr);
  t.ok(Number(km?.[2]) < 1000, `a killed wait answered in ${km?.[2]} ms`);
  t.match(k.stdout, /"Phase": "running"\n0\n$/, 'the process ran on and exited 0');
  // timeout on exit: 124, then exit still answers.
  const to = await run(`mkdir -p $S/x/proc && echo '{"Path":"/bin/sleep","Args":["1.5"]}' > $S/x/proc/cmd
    timeout 0.3 cat $S/x/proc/exit; st; cat $S/x/proc/exit`);
  t.equal(to.stdout, 'rc=124\n0\n');
});
