import t from 'tap';
import { daemonMount } from './helpers';

/**
 * Failures through a real daemon's mount, as bash and coreutils see them: the status, the text
 * the shell prints for the errno, and the element's `error` file (FS.md rules 2 and 5, the
 * "Errors" section of docs/fs.md). One daemon for the file; each test uses anchors of its own.
 */
const env = daemonMount(t);

/** Runs script with `set -u`; `st` prints the last status as "rc=N" (one a line, in order). */
async function run(script: string) {
  const { run } = await env;
  return run(`set -u; st() { echo "rc=$?"; }; cd $S; ${script}`);
}

const rcs = (out: string) => [...out.matchAll(/^rc=(\d+)$/gm)].map((m) => Number(m[1]));

t.test('errors: a cmd that is not JSON fails its write (EINVAL) and the error file says why', async (t) => {
  const r = await run(`
    mkdir -p e1/proc
    echo '{bad' > e1/proc/cmd; st
    cat e1/proc/error
    grep -o '"Phase": "[a-z]*"' e1/proc/peek
    /bin/echo -n '{"Path":"/bin/true"' > e1/proc/cmd; st
    cat e1/proc/error
    printf '{"Path":"/bin/echo","Args":["fine"]}' > e1/proc/cmd; st; cat e1/proc/stdout`);
  t.same(rcs(r.stdout), [1, 1, 0], r.stdout + r.stderr);
  t.match(r.stderr, /^bash: (line \d+: )?echo: write error: Invalid argument$/m, 'the builtin echo saw the failed write');
  t.match(r.stdout, /^EINVAL: command json not parsing: Expected property name or '\}' in JSON at position 1$/m, 'the parse reason');
  t.match(r.stdout, /"Phase": "idle"/, 'nothing started');
  t.match(r.stderr, /\/bin\/echo: write error: Invalid argument/, 'JSON cut short fails at close');
  t.match(r.stdout, /^EINVAL: command json not parsing: incomplete json: \{"Path":"\/bin\/true"$/m);
  t.match(r.stdout, /fine\n$/, 'a good cmd after the bad ones starts the process');
});

t.test('errors: echo KILL > signal of a process that has exited fails', async (t) => {
  const r = await run(`
    mkdir -p e2/proc
    echo '{"Path":"/bin/true"}' > e2/proc/cmd; cat e2/proc/exit
    echo KILL > e2/proc/signal; st; cat e2/proc/error
    echo KILL > e2/proc/signal; st`);
  t.same(rcs(r.stdout), [1, 1], r.stdout + r.stderr);
  t.match(r.stdout, /^0\n/);
  t.match(r.stderr, /echo: write error: No such process/);
  t.match(r.stdout, /^ESRCH: process already finished$/m);
});

t.test('errors: writing to a read-only file and reading a write-only one fail with EACCES or EPERM', async (t) => {
  const r = await run(`
    mkdir -p e3/chan e3p/proc
    for f in server/peek server/members server/log e3/chan/peek e3/chan/recv e3/chan/error e3p/proc/stdout e3p/proc/stderr e3p/proc/wait e3p/proc/exit e3p/proc/peek; do
      echo x > $f; st
      echo x >> $f; st
    done
    for f in server/ctl e3/chan/send e3/chan/close e3p/proc/stdin e3p/proc/signal; do
      cat $f; st
      head -c 1 $f; st
    done
    grep -o '"Phase": "[a-z]*"' e3p/proc/peek; tr -d ' \\t\\n' < e3/chan/peek; echo`);
  const codes = rcs(r.stdout);
  t.equal(codes.length, 11 * 2 + 5 * 2, r.stdout + r.stderr);
  t.ok(codes.every((c) => c !== 0), 'every one failed');
  const denied = r.stderr.split('\n').filter(Boolean);
  t.equal(denied.length, codes.length, r.stderr);
  t.same(denied.filter((l) => !/(Permission denied|Operation not permitted)$/.test(l)), [], 'each with EACCES or EPERM');
  t.match(r.stdout, /"Phase": "idle"\n\{"Cap":0,"Closed":false,"Aborted":false,"NumSend":0,"NumRecv":0\}\n$/, 'and nothing happened');
});

t.test('errors: unknown names are ENOENT', async (t) => {
  const r = await run(`
    mkdir -p e4/chan
    cat e4/chan/nope; st
    ls $M/Xnotaserver; st
    ls $M/X0000000000000000; st
    cat $M/X0000000000000000/server/peek; st
    ls $S/nope; st
    cat $S/nope/chan/peek; st
    cat $S/e4/proc/peek; st
    ls $S/e4/dns; st
    stat $S/e4/chan/nope; st`);
  t.same(rcs(r.stdout), [1, 2, 2, 1, 2, 1, 1, 2, 1], r.stdout + r.stderr);
  const lines = r.stderr.split('\n').filter(Boolean);
  t.equal(lines.length, 9, r.stderr);
  t.same(lines.filter((l) => !/No such file or directory$/.test(l)), [], 'every one ENOENT');
  const rr = await run('ls $M; ls -a $M | wc -l');
  t.equal(rr.stdout, `${(await env).X}\n3\n`, 'the root still lists the one server (and . ..)');
});

t.test('errors: mkdir of an unknown kind is an anchor; a second element is EEXIST or EBUSY', async (t) => {
  const r = await run(`
    mkdir -p e5/a
    mkdir e5/a/bogus-kind; st; ls e5/a
    mkdir e5/a/chan; st
    mkdir e5/a/chan; st
    mkdir e5/a/proc; st
    mkdir -p e5/a/chan; st
    ls e5/a`);
  t.same(rcs(r.stdout), [0, 0, 1, 1, 0], r.stdout + r.stderr);
  t.match(r.stdout, /^rc=0\nbogus-kind\n/);
  const errs = r.stderr.split('\n').filter(Boolean);
  t.equal(errs.length, 2, r.stderr);
  t.same(errs.filter((l) => !/(File exists|Device or resource busy)$/.test(l)), [], 'EEXIST or EBUSY');
  t.match(r.stdout, /\nbogus-kind\nchan\n$/, 'still the one channel');
});

t.test('errors: rmdir proc of a running process is EBUSY, and the error file says to signal it first', async (t) => {
  const r = await run(`
    mkdir -p e6/proc
    echo '{"Path":"/bin/sleep","Args":["100"]}' > e6/proc/cmd
    rmdir e6/proc; st
    cat e6/proc/error
    grep -o '"Phase": "[a-z]*"' e6/proc/peek
    echo KILL > e6/proc/signal; cat e6/proc/exit
    rmdir e6/proc; st; ls e6; rmdir e6; st`);
  t.same(rcs(r.stdout), [1, 0, 0], r.stdout + r.stderr);
  t.match(r.stderr, /rmdir: failed to remove 'e6\/proc': Device or resource busy/);
  t.match(r.stdout, /^EBUSY: .*signal it first$/m);
  t.match(r.stdout, /"Phase": "running"\n137\n/, 'still running until killed');
});

t.test('errors: rmdir of a non-empty anchor is ENOTEMPTY', async (t) => {
  const r = await run(`
    mkdir -p e7/a/b e7/c/chan
    rmdir e7/a; st
    rmdir e7/c; st
    rmdir e7; st
    ls -R e7 | grep -c :`);
  t.same(rcs(r.stdout), [1, 1, 1], r.stdout + r.stderr);
  t.equal(r.stderr.split('\n').filter((l) => /Directory not empty$/.test(l)).length, 3, r.stderr);
});

t.test('errors: cap after first use is EBUSY; bad words are EINVAL', async (t) => {
  const r = await run(`
    mkdir -p e8/chan
    echo 1 > e8/chan/cap; st
    echo hi > e8/chan/send; cat e8/chan/recv
    echo 3 > e8/chan/cap; st
    cat e8/chan/error; cat e8/chan/cap
    echo abc > e8/chan/cap; st; cat e8/chan/error
    echo -- -1 > e8/chan/cap; st`);
  t.same(rcs(r.stdout), [0, 1, 1, 1], r.stdout + r.stderr);
  t.match(r.stdout, /^rc=0\nhi\nrc=1\nEBUSY: capacity can only change before the channel is first used\n1\n/);
  t.match(r.stderr, /write error: Device or resource busy/);
  t.match(r.stdout, /EINVAL: capacity must be a non-negative integer, got "abc"/);
});

t.test('errors: a send larger than the maximum message fails and sends nothing', async (t) => {
  const r = await run(`
    mkdir -p e9/chan; echo 1 > e9/chan/cap
    head -c $((16 * 1024 * 1024 + 1)) /dev/zero > e9/chan/send; st
    cat e9/chan/error
    tr -d ' \\t\\n' < e9/chan/peek; echo
    head -c $((16 * 1024 * 1024)) /dev/zero > e9/chan/send; st
    cat e9/chan/recv | wc -c`);
  t.same(rcs(r.stdout), [1, 0], r.stdout + r.stderr);
  t.match(r.stderr, /head: write error: Message too long/);
  t.match(r.stdout, /^EMSGSIZE: message of 16777217 bytes exceeds the maximum of 16777216 bytes$/m);
  t.match(r.stdout, /"NumSend":0,"NumRecv":0/);
  t.match(r.stdout, /^16777216$/m, 'the largest message goes through whole');
});

t.test('errors: creating files, servers and renames are EPERM; files are not directories', async (t) => {
  const r = await run(`
    mkdir -p e10/chan
    touch e10/f; st
    echo x > e10/chan/newfile; st
    rm e10/chan/peek; st
    mkdir $M/X0123456789abcdef; st
    mv e10 e11; st
    cat e10/chan/recv/x; st
    ls e10/chan/peek/; st`);
  t.same(rcs(r.stdout), [1, 1, 1, 1, 1, 1, 2], r.stdout + r.stderr);
  const errs = r.stderr.split('\n').filter(Boolean);
  t.same(errs.slice(0, 5).filter((l) => !/Operation not permitted$/.test(l)), [], r.stderr);
  t.same(errs.slice(5).filter((l) => !/Not a directory$/.test(l)), [], r.stderr);
});
