import { readFile } from 'fs/promises';
import t from 'tap';
import { LocalClient } from '../../src/client/local';
import { mount } from '../../src/fs/mount';
import { Server } from '../../src/node/server';
import { blockedInRead, mountTemp, sh } from './helpers';

/**
 * End to end: a real Server behind a LocalClient, mounted at a temp dir, driven by bash and
 * coreutils. Examples in docs/fs.md come from here.
 */
async function setup(t: { teardown(fn: () => unknown): void }) {
  const server = new Server({ stderr: () => {} });
  const client = new LocalClient(server, { via: 'mount' });
  t.teardown(() => server.shutdown());
  const log: string[] = [];
  const m = await mountTemp(t, client, (l) => log.push(l));
  const X = server.id;
  const run = (script: string, limitMs?: number) => sh(`set -u; M=${m.dir}; X=${X}; S=$M/$X; ${script}`, { limitMs });
  return { server, client, m, X, run, log };
}

t.test('mount: ls shows the servers, .self is a hidden link home', async (t) => {
  const { X, run } = await setup(t);
  const r = await run('ls $M; ls -a $M | grep -c self; readlink $M/.self; ls $M/.self/; cat $M/.self/server/peek');
  t.equal(r.code, 0, r.stderr);
  const [ls, selfCount, link, home, ...peek] = r.stdout.split('\n');
  t.equal(ls, X);
  t.equal(selfCount, '0', '.self is not listed');
  t.equal(link, X);
  t.equal(home, 'server');
  t.match(JSON.parse(peek.join('\n')), { Id: X });
});

t.test('mount: chan by mkdir, cap, send and recv, peek, close, rmdir', async (t) => {
  const { run } = await setup(t);
  const r = await run(`
    mkdir -p $S/hi/charlie/chan && cd $S/hi/charlie/chan
    ls; echo 2 > cap; cat cap
    echo hello > send; printf 'two\\nlines' > send
    cat recv; echo; cat recv; echo
    grep -c '"NumSend": 2' peek
    echo > close; cat peek | grep -c '"Closed": true'
    echo more > send; echo "send after close: $?"
    cd /; rmdir $S/hi/charlie/chan && rmdir $S/hi/charlie $S/hi && ls $S`);
  t.equal(r.stdout, 'cap\nclose\nerror\nhelp\npeek\nrecv\nsend\ntryrecv\ntrysend\n2\nhello\n\ntwo\nlines\n1\n1\nsend after close: 1\nserver\n', r.stderr);
  t.match(r.stderr, /write error: Broken pipe/, 'the refused send failed at its write');
});

t.test('mount: probes consume nothing (ls -l, stat, open and close)', async (t) => {
  const { run } = await setup(t);
  const r = await run(`
    mkdir -p $S/c/chan && echo 1 > $S/c/chan/cap && echo kept > $S/c/chan/send
    ls -l $S/c/chan >/dev/null; stat $S/c/chan/recv >/dev/null; : < $S/c/chan/recv; exec 3<$S/c/chan/recv; exec 3<&-
    stat -c %s $S/c/chan/recv; cat $S/c/chan/recv`);
  t.equal(r.stdout, '0\nkept\n', r.stderr);
});

t.test('mount: an interrupted recv returns fast, takes nothing, and the next reader gets the message whole', async (t) => {
  const { run } = await setup(t);
  const r = await run(`
    mkdir -p $S/c/chan
    s=$(date +%s%N); timeout 1 cat $S/c/chan/recv; rc=$?; e=$(date +%s%N)
    echo "rc=$rc ms=$(( (e - s) / 1000000 ))"
    cat $S/c/chan/recv > $M/../got.$$ & pid=$!
    for i in $(seq 250); do [ "$(cut -d' ' -f1 /proc/$pid/syscall 2>/dev/null)" = 0 ] && break; sleep 0.02; done
    echo whole-message > $S/c/chan/send; wait $pid; cat $M/../got.$$; rm -f $M/../got.$$`);
  const m = /rc=(\d+) ms=(\d+)/.exec(r.stdout);
  t.ok(m, r.stdout + r.stderr);
  t.equal(m?.[1], '124', 'timeout reports the kill');
  t.ok(Number(m?.[2]) < 2000, `returned in ${m?.[2]} ms`);
  t.match(r.stdout, /whole-message\n$/);
});

t.test('mount: kill and Ctrl-C end blocked readers and writers within a second, leaving no trace', async (t) => {
  const { run } = await setup(t);
  const r = await run(`
    mkdir -p $S/r/chan $S/w/chan
    cat $S/r/chan/recv & p1=$!
    for i in $(seq 250); do [ "$(cut -d' ' -f1 /proc/$p1/syscall 2>/dev/null)" = 0 ] && break; sleep 0.02; done
    s=$(date +%s%N); kill -TERM $p1; wait $p1; r1=$?; e=$(date +%s%N)
    echo "r1=$r1 ms=$(( (e - s) / 1000000 ))"
    s=$(date +%s%N); timeout -s INT 0.5 bash -c "echo lost > $S/w/chan/send"; r2=$?; e=$(date +%s%N)
    echo "r2=$r2 ms=$(( (e - s) / 1000000 ))"
    s=$(date +%s%N); echo lost | timeout -s INT 0.5 cat > $S/w/chan/send; r3=$?; e=$(date +%s%N)
    echo "r3=$r3 ms=$(( (e - s) / 1000000 ))"
    for c in r w; do grep -E '"NumSend"|"NumRecv"' $S/$c/chan/peek | tr -d ' \t\n'; echo; done
    cat $S/w/chan/recv > $M/../got.$$ & p=$!
    echo kept > $S/w/chan/send; wait $p; cat $M/../got.$$; rm -f $M/../got.$$`);
  const ms = [...r.stdout.matchAll(/r(\d)=(\d+) ms=(\d+)/g)].map((m) => ({ which: m[1], rc: m[2], ms: Number(m[3]) }));
  t.same(ms.map((m) => [m.which, m.rc]), [['1', '143'], ['2', '124'], ['3', '124']], r.stdout + r.stderr);
  t.ok(ms[0]?.ms < 1000, `a killed reader was answered in ${ms[0]?.ms} ms`);
  t.ok(ms[1]?.ms < 1500 && ms[2]?.ms < 1500, `interrupted senders returned in ${ms[1]?.ms} and ${ms[2]?.ms} ms`);
  t.match(r.stdout, /"NumSend":0,"NumRecv":0\n"NumSend":0,"NumRecv":0\nkept\n$/, 'nothing sent, nothing received, the next message intact');
});

t.test('mount: proc: cmd starts it, stdout, stderr, exit, wait, stdin, signal', async (t) => {
  const { run } = await setup(t);
  const r = await run(`
    mkdir -p $S/p/proc && cd $S/p/proc
    echo '{"Path":"/bin/sh","Args":["-c","echo out; echo err >&2; exit 3"]}' > cmd
    cat stdout; cat stderr; cat exit; grep -o '"Phase": "[a-z]*"' wait
    mkdir -p $S/q/proc && cd $S/q/proc
    echo '{"Path":"/bin/cat"}' > cmd
    echo 'to stdin' > stdin
    cat stdout; cat exit
    mkdir -p $S/s/proc && cd $S/s/proc
    echo '{"Path":"/bin/sleep","Args":["100"]}' > cmd
    echo TERM > signal; cat exit
    echo NOPE > signal; echo "bad signal: $?"; cat error`);
  t.equal(r.code, 0, r.stderr);
  t.match(r.stdout, /^out\nerr\n3\n"Phase": "\w+"\nto stdin\n0\n143\nbad signal: 1\nEINVAL: /, r.stderr);
  t.match(r.stderr, /write error: Invalid argument/);
});

t.test('mount: an interrupted stdout read loses no byte; events stream until interrupted', async (t) => {
  const { X, run } = await setup(t);
  const r = await run(`
    mkdir -p $S/p/proc && cd $S/p/proc
    echo '{"Path":"/bin/sh","Args":["-c","echo first; read x; echo second $x"]}' > cmd
    timeout 1 cat stdout; echo "rc=$?"
    echo go > stdin
    cat stdout; cat exit
    mkdir -p $S/j/@join && timeout 1 cat $S/j/@join/events; echo "rc=$?"`);
  t.equal(r.stdout, `first\nrc=124\nsecond go\n0\n/${X}\nrc=124\n`, r.stderr);
});

t.test('mount: dns records, unset, peek', async (t) => {
  const { run } = await setup(t);
  const r = await run(`
    mkdir -p $S/ns/dns && cd $S/ns/dns
    echo 'a.b. A 1.2.3.4' >> records; echo 'c.d. A 5.6.7.8' >> records; cat records | wc -l
    echo 'e.f. A 9.9.9.9' > records; cat records | wc -l; grep -c e.f records
    echo e.f. > unset; cat records | wc -l
    cat address | grep -cE '^[0-9.]+:[0-9]+$'`);
  t.equal(r.stdout, '2\n1\n1\n0\n1\n', r.stderr);
});

t.test('mount: @join announces servers; server members', async (t) => {
  const { X, run } = await setup(t);
  const r = await run(`
    mkdir -p $S/j/@join && timeout 5 cat $S/j/@join/recv
    cut -d' ' -f1,3 $S/server/members`);
  t.equal(r.stdout, `/${X}\n${X} alive\n`, r.stderr);
});

t.test('mount: refuses a live mount point, recovers a dead one', async (t) => {
  const { m, client } = await setup(t);
  await t.rejects(mount(client, m.dir), { code: 'EBUSY', message: `${m.dir} is already mounted` });
  // A dead mount: a process that mounted and was killed.
  const dir = `${m.dir}-dead`;
  const child = await sh(`
    node -e "
      const { Server } = require('${process.cwd()}/dist/src/node/server');
      const { LocalClient } = require('${process.cwd()}/dist/src/client/local');
      require('${process.cwd()}/dist/src/fs/mount').mount(new LocalClient(new Server()), '${dir}').then(() => console.log('up'));
      setInterval(() => {}, 1000);
    " & pid=$!
    for i in $(seq 100); do [ -d ${dir}/.self ] && break; sleep 0.05; done
    kill -9 $pid; wait $pid; stat ${dir} 2>&1 | grep -c 'not connected'`);
  t.equal(child.stdout.trim().split('\n').pop(), '1', `dead mount made: ${child.stdout} ${child.stderr}`);
  const again = await mount(client, dir);
  t.teardown(async () => { await again.unmount(); await sh(`rmdir ${dir}`); });
  const ls = await sh(`ls ${dir}`);
  t.equal(ls.stdout.trim(), (await client.home()).id, 'mounted over the dead one');
});

t.test('mount: unmount answers blocked readers', async (t) => {
  const { run, m } = await setup(t);
  const reader = run('mkdir -p $S/c/chan; cat $S/c/chan/recv; echo "rc=$?"');
  await blockedInRead(`cat ${m.dir}/`);
  const t0 = Date.now();
  await m.unmount();
  const r = await reader;
  t.match(r.stdout, /rc=[1-9]/, 'the reader got an error');
  t.ok(Date.now() - t0 < 2000, `in ${Date.now() - t0} ms`);
});

t.test('mount: peek latency (open+read+close)', async (t) => {
  const { m, X } = await setup(t);
  const file = `${m.dir}/${X}/server/peek`;
  const times: number[] = [];
  for (let i = 0; i < 200; i++) {
    const t0 = process.hrtime.bigint();
    await readFile(file);
    times.push(Number(process.hrtime.bigint() - t0) / 1e6);
  }
  times.sort((a, b) => a - b);
  const median = times[100];
  t.comment(`peek open+read+close: median ${median.toFixed(3)} ms, p90 ${times[180].toFixed(3)} ms`);
  t.ok(median < 20, `median ${median} ms`);
});

t.test('mount: help in every directory, from the file tables', async (t) => {
  const { run } = await setup(t);
  const r = await run(`
    mkdir -p $S/h/chan $S/p/proc $S/j/@join
    cat $M/help | cut -d' ' -f1
    for d in $S/server $S/h/chan $S/p/proc $S/j/@join; do diff <(ls $d) <(cut -d' ' -f1 $d/help | sort) && echo same; done
    grep '^trysend' $S/h/chan/help`);
  t.equal(r.code, 0, r.stderr);
  const lines = r.stdout.split('\n');
  t.same(lines.slice(0, 3), ['X…', '.self', 'help'], 'the root says what it holds');
  t.same(lines.slice(3, 7), ['same', 'same', 'same', 'same'], 'help lists exactly the files of each directory');
  t.match(lines[7], /^trysend\s+w\s+each write is one message, or fails with EAGAIN/);
});

t.test('mount: chan trysend and tryrecv answer at once', async (t) => {
  const { run } = await setup(t);
  const r = await run(`
    mkdir -p $S/t/chan && cd $S/t/chan && echo 1 > cap
    echo one > trysend; echo "first: $?"
    echo two > trysend; echo "full: $?"
    cat error
    cat tryrecv
    cat tryrecv; echo "empty: $?"
    cat error`, 10_000);
  t.equal(r.stdout, 'first: 0\nfull: 1\nEAGAIN: channel has no room and no waiting receiver\none\nempty: 1\nEAGAIN: channel is empty\n', r.stderr);
  t.match(r.stderr, /write error: Resource temporarily unavailable/);
  t.match(r.stderr, /cat: tryrecv: Resource temporarily unavailable/);
});

t.test('mount: proc env, server stk', async (t) => {
  const { run } = await setup(t);
  const r = await run(`
    mkdir -p $S/e/proc && cd $S/e/proc
    cat env; echo "idle: $?"
    echo '{"Path":"/bin/true","Env":["A=1","B=two words"]}' > cmd
    cat env
    grep -c '^== ' $S/server/stk
    tail -n 1 $S/server/stk`);
  t.equal(r.stdout, 'idle: 1\nA=1\nB=two words\n5\n•••\n', r.stderr);
  t.match(r.stderr, /cat: env: No such process/);
});
