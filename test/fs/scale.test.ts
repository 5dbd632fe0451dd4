import t, { type Test } from 'tap';
import { daemonMount, eventually, sh } from './helpers';

/**
 * FS.md rule 4 at scale, on a real daemon's mount: 200 `cat recv` processes blocked at once
 * neither slow `ls` nor `cat peek`, each gets exactly one whole message when 200 are sent, and
 * 200 blocked readers killed at once are answered promptly, having consumed nothing.
 */
const N = 200;

/** Starts n `cat FILE > OUT/i` in the background, one per file in turn; their pids, one a line, go to OUT/pids. */
function readersScript(files: string[], out: string, n: number): string {
  const list = files.map((f) => `"${f}"`).join(' ');
  return `
    files=(${list}); mkdir -p ${out}; : > ${out}/pids
    for i in $(seq ${n}); do
      f=\${files[$(( (i - 1) % \${#files[@]} ))]}
      cat "$f" > ${out}/$i 2> ${out}/$i.err & echo $! >> ${out}/pids
    done`;
}

/** How many of the pids in file sit in read(2) (syscall 0 on x86-64, 63 on arm64). */
async function blockedCount(pidsFile: string): Promise<number> {
  const r = await sh(`n=0; for p in $(cat ${pidsFile}); do s=$(cut -d' ' -f1 /proc/$p/syscall 2>/dev/null); { [ "$s" = 0 ] || [ "$s" = 63 ]; } && n=$((n+1)); done; echo $n`);
  return Number(r.stdout.trim());
}

/** How many of the pids are still alive (not zombies: bash reaps them, but be strict). */
async function aliveCount(pidsFile: string): Promise<number> {
  const r = await sh(`n=0; for p in $(cat ${pidsFile}); do [ -e /proc/$p ] && ! grep -q '^State:.*Z' /proc/$p/status 2>/dev/null && n=$((n+1)); done; echo $n`);
  return Number(r.stdout.trim());
}

/** Runs `ls $M` and `cat $S/server/peek` `times` times each; the wall time of each in ms (measured inside bash). */
async function latencies(run: (s: string) => Promise<{ stdout: string; stderr: string }>, times: number) {
  const r = await run(`
    for i in $(seq ${times}); do
      s=$(date +%s%N); ls $M > /dev/null || echo FAIL-ls; e=$(date +%s%N); echo "ls $(( (e - s) / 1000 ))"
      s=$(date +%s%N); cat $S/server/peek > /dev/null || echo FAIL-peek; e=$(date +%s%N); echo "peek $(( (e - s) / 1000 ))"
      s=$(date +%s%N); ls $S > /dev/null || echo FAIL-lsS; e=$(date +%s%N); echo "lsS $(( (e - s) / 1000 ))"
    done`);
  const of = (what: string) => [...r.stdout.matchAll(new RegExp(`^${what} (\\d+)$`, 'gm'))].map((m) => Number(m[1]) / 1000);
  return { ls: of('ls'), peek: of('peek'), lsS: of('lsS'), failed: /FAIL/.test(r.stdout), err: r.stderr };
}

const fmt = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return `median ${s[Math.floor(s.length / 2)]?.toFixed(1)} ms, max ${s[s.length - 1]?.toFixed(1)} ms`;
};

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? 0;

/**
 * The bound for "not held up by the blocked readers": 100 ms, or on a loaded machine eight times
 * the median of the same probes with no reader (measured in the same run), whichever is larger.
 * A probe queued behind 200 blocked reads would take seconds; a busy machine's spikes do not.
 */
const unheld = (idle: number[]) => Math.max(100, 8 * median(idle));

async function scenario(t: Test, channels: number) {
  const { run, base } = await daemonMount(t);
  const names = Array.from({ length: channels }, (_, i) => `c${i}`);
  const mk = await run(`for c in ${names.join(' ')}; do mkdir -p $S/scale/$c/chan || exit 1; done; echo ok`);
  t.equal(mk.stdout, 'ok\n', mk.stderr);
  const S = (await run('echo $S')).stdout.trim();
  const files = names.map((c) => `${S}/scale/${c}/chan/recv`);
  const out = `${base}/out`;

  const idle = await latencies(run, 10);
  t.comment(`${channels} channel(s), no readers: ls ${fmt(idle.ls)}; peek ${fmt(idle.peek)}; ls server ${fmt(idle.lsS)}`);

  // The readers live in a bash of their own that waits for them all.
  const readers = sh(`${readersScript(files, out, N)}; wait; echo done`, { limitMs: 60_000 });
  await eventually(async () => (await blockedCount(`${out}/pids`)) === N, 20_000, 100).catch(async () =>
    t.fail(`not all ${N} readers blocked: ${await blockedCount(`${out}/pids`)}`),
  );
  t.pass(`${N} readers blocked in read(2) on ${channels} channel(s)`);

  const busy = await latencies(run, 10);
  t.notOk(busy.failed, busy.err);
  t.comment(`${channels} channel(s), ${N} blocked readers: ls ${fmt(busy.ls)}; peek ${fmt(busy.peek)}; ls server ${fmt(busy.lsS)}`);
  t.ok(Math.max(...busy.ls) < unheld(idle.ls), `ls DIR with ${N} blocked readers: ${fmt(busy.ls)} (bound ${unheld(idle.ls)} ms)`);
  t.ok(Math.max(...busy.peek) < unheld(idle.peek), `cat server/peek with ${N} blocked readers: ${fmt(busy.peek)} (bound ${unheld(idle.peek)} ms)`);
  t.ok(Math.max(...busy.lsS) < unheld(idle.lsS), `ls DIR/Xid with ${N} blocked readers: ${fmt(busy.lsS)} (bound ${unheld(idle.lsS)} ms)`);
  t.equal(await blockedCount(`${out}/pids`), N, 'still all blocked: nothing was taken by the probes');

  // 200 distinct messages, spread over the channels in turn (each reader's channel gets as many
  // messages as it has readers). With capacity 0 each send returns once a reader took it.
  const send = await run(`
    files=(${names.map((c) => `$S/scale/${c}/chan/send`).join(' ')})
    for i in $(seq ${N}); do printf 'message %s of %s\\nsecond line\\n' $i ${N} > \${files[$(( (i - 1) % \${#files[@]} ))]} || echo "FAIL $i"; done; echo sent`, { limitMs: 60_000 });
  t.equal(send.stdout, 'sent\n', send.stderr);
  const r = await readers;
  t.equal(r.stdout, 'done\n', r.stderr);
  const got = await sh(`for i in $(seq ${N}); do printf '%s|' "$(cat ${out}/$i | tr '\\n' '~')"; cat ${out}/$i.err; echo; done`);
  const lines = got.stdout.split('\n').filter(Boolean);
  t.equal(lines.length, N);
  const bad = lines.filter((l) => !/^message \d+ of 200~second line~\|$/.test(l));
  t.same(bad, [], 'every reader got exactly one whole message and no error');
  const seen = new Set(lines.map((l) => /^message (\d+) /.exec(l)?.[1]));
  t.equal(seen.size, N, `all ${N} distinct messages received (none lost, none duplicated)`);
  const peeks = await run(`for c in ${names.join(' ')}; do tr -d ' \\t\\n' < $S/scale/$c/chan/peek; echo; done`);
  const totals = peeks.stdout.split('\n').filter(Boolean).map((l) => JSON.parse(l) as { NumSend: number; NumRecv: number });
  t.equal(totals.reduce((a, p) => a + p.NumSend, 0), N, 'NumSend totals 200');
  t.equal(totals.reduce((a, p) => a + p.NumRecv, 0), N, 'NumRecv totals 200');
}

t.test(`scale: ${N} readers blocked on one unbuffered channel`, async (t) => scenario(t, 1));
t.test(`scale: ${N} readers blocked across 8 channels`, async (t) => scenario(t, 8));

t.test(`scale: ${N} blocked readers killed at once are answered promptly and consume nothing`, async (t) => {
  const { run, base } = await daemonMount(t);
  t.equal((await run('mkdir -p $S/k/chan && echo ok')).stdout, 'ok\n');
  const S = (await run('echo $S')).stdout.trim();
  const out = `${base}/out`;
  const idle = await latencies(run, 5);
  const readers = sh(`${readersScript([`${S}/k/chan/recv`], out, N)}; wait; echo done`, { limitMs: 60_000 });
  await eventually(async () => (await blockedCount(`${out}/pids`)) === N, 20_000, 100).catch(async () =>
    t.fail(`not all ${N} readers blocked: ${await blockedCount(`${out}/pids`)}`),
  );
  const t0 = Date.now();
  await sh(`kill -9 $(cat ${out}/pids)`);
  await eventually(async () => (await aliveCount(`${out}/pids`)) === 0, 10_000, 20).catch(async () =>
    t.fail(`still alive after 10 s: ${await aliveCount(`${out}/pids`)}`),
  );
  const ms = Date.now() - t0;
  t.comment(`${N} killed readers all gone in ${ms} ms`);
  t.ok(ms < 2000, `all ${N} killed readers gone in ${ms} ms`);
  t.equal((await readers).stdout, 'done\n');

  const peek = await run('tr -d " \\t\\n" < $S/k/chan/peek');
  t.match(peek.stdout, /"NumSend":0,"NumRecv":0/, 'the channel took and gave nothing');
  // And the channel still works: the next reader gets the next message whole.
  const after = await run(`
    cat $S/k/chan/recv > ${base}/after & p=$!
    for i in $(seq 250); do s=$(cut -d' ' -f1 /proc/$p/syscall 2>/dev/null); { [ "$s" = 0 ] || [ "$s" = 63 ]; } && break; sleep 0.02; done
    echo after-the-kill > $S/k/chan/send; wait $p; cat ${base}/after; tr -d ' \\t\\n' < $S/k/chan/peek`);
  t.match(after.stdout, /^after-the-kill\n.*"NumSend":1,"NumRecv":1/, after.stderr);
  const lat = await latencies(run, 5);
  const bound = unheld([...idle.ls, ...idle.peek]);
  t.ok(Math.max(...lat.ls, ...lat.peek) < bound, `ls and peek after the kill: ls ${fmt(lat.ls)}; peek ${fmt(lat.peek)} (bound ${bound} ms)`);
});
