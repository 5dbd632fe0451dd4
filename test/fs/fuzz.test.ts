import t from 'tap';
import { readdirSync } from 'node:fs';
import { alive } from '../helpers/daemon';
import { daemonMount, sh } from './helpers';

/**
 * A bounded fuzz run against a real daemon's mount: seeded random ops (ls, cat, head -c, echo >,
 * echo >>, printf of random bytes, mkdir -p, rmdir, stat, find, timeout-bounded reads and
 * writes of blocking files, readers killed mid-call) on random paths (real, made up, odd, deep)
 * with random data (JSON, garbage, huge lines, empty), from several bash shells at once. Every op
 * runs under `timeout -k 1 5`. Afterwards the daemon is alive, no op needed that outer bound,
 * `ls` and `peek` answer, and the daemon printed no stack trace.
 * FUZZ_SEED and FUZZ_OPS override the seed and the number of ops.
 */
const SEED = Number(process.env.FUZZ_SEED ?? 20240611);
const OPS = Number(process.env.FUZZ_OPS ?? 3000);
const SHELLS = 4;
const CHUNK = 60;

function mulberry32(seed: number) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let r = Math.imul(a ^ (a >>> 15), 1 | a);
    r = (r + Math.imul(r ^ (r >>> 7), 61 | r)) ^ r;
    return ((r ^ (r >>> 14)) >>> 0) / 4294967296;
  };
}

const KINDS = ['chan', 'proc', 'dns', '@join', '@leave', 'docker', 'server'];
const FILES = ['cap', 'send', 'recv', 'close', 'peek', 'cmd', 'stdin', 'stdout', 'stderr', 'wait', 'exit', 'signal',
  'address', 'records', 'unset', 'events', 'members', 'ctl', 'log', 'error', 'nope', '.x'];
const NAMES = ['a', 'b', 'c', 'd', 'x y', '.hidden', 'bogus-kind', 'ñé', '-dash', 'Xnotaserver', 'a'.repeat(120), '%s', '*'];

/** A bash single-quoted word. */
const q = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;

function generator(rand: () => number) {
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)];
  const int = (n: number) => Math.floor(rand() * n);

  function path(): string {
    const r = rand();
    // Every path is one double-quoted word: a name with a space or a `*` must never split or glob
    // into paths outside the mount (an earlier version made folders in the working directory).
    if (r < 0.03) return '"$M"';
    if (r < 0.05) return `"${pick(['$M/Xnotaserver', '$M/X0000000000000000', '$M/.self', '$M/.self/server'])}"`;
    if (r < 0.1) return `"$S/server/${pick(['peek', 'members', 'log', 'error', 'ctl', 'nope'])}"`;
    const parts: string[] = ['fz'];
    const depth = 1 + int(rand() < 0.1 ? 6 : 3);
    for (let i = 0; i < depth; i++) parts.push(rand() < 0.2 ? pick(NAMES) : pick(['a', 'b', 'c']));
    const tail = rand();
    if (tail < 0.55) parts.push(pick(KINDS.slice(0, 5)), pick(FILES));
    else if (tail < 0.7) parts.push(pick(KINDS));
    else if (tail < 0.75) parts.push(pick(KINDS), pick(FILES), pick(['x', 'peek']));
    return `"$S/${parts.map((p) => p.replace(/(["\\$`])/g, '\\$1')).join('/')}"`;
  }

  function data(): string {
    const r = rand();
    if (r < 0.15) return '';
    if (r < 0.35) return pick(['{"Path":"/bin/echo","Args":["hi"]}', '{"Path":"/bin/sleep","Args":["0.3"]}', '{"Path":"/bin/sh","Args":["-c","echo out; echo err >&2"]}',
      '{"Path":"/bin/cat"}', '{"Path":"/nonexistent"}', '{"Path":"/bin/true","Scrub":true}', '[1,2]', '{bad', '{"Path": ', 'null', '{}']);
    if (r < 0.5) return pick(['0', '1', '3', '-1', '99999999999999999999', 'KILL', 'TERM', 'NOPE', '9', 'a.b. A 1.2.3.4', 'x.y. TXT "t"', 'bad record',
      '127.0.0.1:0', 'garbage:addr', 'join nope', 'join circuit://garbage']);
    if (r < 0.6) return 'L'.repeat(1 + int(200_000)); // a huge line
    let s = '';
    const n = 1 + int(64);
    for (let i = 0; i < n; i++) s += String.fromCharCode(int(256));
    return s;
  }

  /** printf's format for arbitrary bytes: every byte as an octal escape. */
  const bytes = (s: string) => [...Buffer.from(s, 'latin1')].map((b) => `\\${b.toString(8).padStart(3, '0')}`).join('');

  /** Data for echo: arguments cannot hold NUL (printf carries those). */
  const text = () => data().replace(/\0/g, '0');

  function op(): string {
    const p = path();
    switch (int(15)) {
      case 0: return `ls ${p}`;
      case 1: return `ls -la ${p}`;
      case 2: return `timeout 0.3 cat ${p}`;
      case 3: return `timeout 0.3 head -c ${int(100)} ${p}`;
      case 4: { const d = text(); return d.length > 1000 ? `head -c ${d.length} /dev/zero | tr '\\0' L | timeout 0.3 tee ${p}` : `timeout 0.3 bash -c ${q(`echo ${q(d)} > ${p}`)}`; }
      case 5: { const d = text(); return d.length > 1000 ? `timeout 0.3 bash -c ${q(`printf %${d.length}s >> ${p}`)}` : `timeout 0.3 bash -c ${q(`echo ${q(d)} >> ${p}`)}`; }
      case 6: { const d = data().slice(0, 300); return `timeout 0.3 bash -c ${q(`printf ${q(bytes(d))} > ${p}`)}`; }
      case 7: return `mkdir -p ${p}`;
      case 8: return `rmdir ${p}`;
      case 9: return `stat ${p}`;
      case 10: return `timeout 0.2 cat ${p}`;
      case 11: return `{ cat ${p} & c=$!; sleep 0.0${1 + int(9)}; kill -9 $c; wait $c; }`;
      case 12: return `find ${p} -maxdepth 2`;
      case 13: { const k = pick(KINDS.slice(0, 5)); return `mkdir -p ${p.replace(/\/[^/]*"$/, `/${k}"`)}`; }
      default: return `timeout -s INT 0.${1 + int(4)} cat ${p}`;
    }
  }
  return op;
}

t.test(`fuzz: ${OPS} random ops from ${SHELLS} shells (seed ${SEED})`, async (t) => {
  const { d, run, base } = await daemonMount(t);
  t.comment(`seed ${SEED}`);
  const next = generator(mulberry32(SEED));
  const ops = Array.from({ length: OPS }, () => next());
  t.equal((await run('mkdir -p $S/fz && echo ok')).stdout, 'ok\n');

  const durations: number[] = [];
  const slow: string[] = [];
  let hardKilled = 0;
  let succeeded = 0;
  const deadline = Date.now() + 90_000;
  const shell = async (k: number) => {
    for (let start = k * CHUNK; start < ops.length && Date.now() < deadline; start += SHELLS * CHUNK) {
      const chunk = ops.slice(start, start + CHUNK);
      const script = chunk
        .map((o, i) => `s=$(date +%s%N); timeout -k 1 5 bash -c ${q(o)} </dev/null >/dev/null 2>&1; rc=$?; e=$(date +%s%N); echo "${start + i} $rc $(( (e - s) / 1000000 ))"`)
        .join('\n');
      const r = await run(script, { limitMs: CHUNK * 7_000 });
      for (const line of r.stdout.split('\n').filter(Boolean)) {
        const [i, rc, ms] = line.split(' ').map(Number);
        durations.push(ms);
        if (rc === 0) succeeded++;
        if (rc === 137 && !/kill -9/.test(ops[i])) hardKilled++;
        if (ms > 3000) slow.push(`${ms} ms rc=${rc}: ${ops[i].slice(0, 200)}`);
      }
      if (r.signal) t.fail(`a shell was killed at its limit: ${r.stderr.slice(-500)}`);
    }
  };
  const t0 = Date.now();
  await Promise.all(Array.from({ length: SHELLS }, (_, k) => shell(k)));
  const took = Date.now() - t0;
  durations.sort((a, b) => a - b);
  t.comment(`${durations.length} ops in ${took} ms; per op median ${durations[durations.length >> 1]} ms, max ${durations[durations.length - 1]} ms; ${succeeded} succeeded`);
  t.same(readdirSync(base), ['mnt'], 'nothing was made outside the mount (paths are quoted words)');
  const tree = await run('find $S/fz 2>/dev/null | wc -l');
  t.comment(`the fuzzed tree has ${tree.stdout.trim()} entries`);
  t.ok(durations.length >= Math.min(OPS, 2000), `ran ${durations.length} ops`);
  t.same(slow, [], 'no op needed its outer 5 s bound (every blocking call was bounded by its own timeout)');
  t.equal(hardKilled, 0, 'no op ignored SIGTERM for a second');

  // The daemon survived and answers.
  t.ok(alive(d.proc.pid!), 'the daemon is alive');
  const ls = await run('s=$(date +%s%N); ls $M >/dev/null; rc=$?; e=$(date +%s%N); echo "$rc $(( (e - s) / 1000000 ))"');
  const [lrc, lms] = ls.stdout.trim().split(' ').map(Number);
  t.equal(lrc, 0, ls.stderr);
  t.ok(lms < 1000, `ls answered in ${lms} ms`);
  const peek = await run('timeout 5 cat $S/server/peek');
  t.doesNotThrow(() => JSON.parse(peek.stdout), 'server/peek parses');
  const works = await run('mkdir -p $S/after/chan && echo 1 > $S/after/chan/cap && echo still > $S/after/chan/send && timeout 5 cat $S/after/chan/recv');
  t.equal(works.stdout, 'still\n', works.stderr);
  const err = d.stderr();
  t.notMatch(err, /Uncaught|UnhandledPromiseRejection|\n\s+at .+:\d+:\d+\)?\n/, 'no stack trace on the daemon stderr');
  t.notMatch(err, /answering EIO/, 'no failure without an errno');
  const blocked = await sh(`pgrep -f "^cat ${(await run('echo $S')).stdout.trim()}" | wc -l`);
  t.equal(blocked.stdout.trim(), '0', 'no reader left behind');
});
