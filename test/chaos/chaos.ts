/**
 * The chaos suite (issue 12): real daemons in network namespaces whose links lose, delay,
 * duplicate and reorder packets (tc netem), while workloads run through the CLI across hosts and
 * faults hit at random moments (a partition that heals, SIGSTOP/SIGCONT of a daemon, kill -9 of
 * clients). It checks invariants and returns a table:
 *
 *   messages sent / received / lost / duplicated  (a work queue: a channel on host 1, producers
 *                                                  on host 2, consumers on host 3)
 *   stream bytes expected / got                   (a process's stdout on host 1, read from host 3)
 *   processes started / finished                  (process churn on host 2, made from host 3)
 *   calls outliving their deadline                (a CLI call still running 30 s after it began)
 *   daemon RSS and fds before / after
 *
 * It touches only its own namespaces (test/helpers/netns.ts) and stops by itself: every loop is
 * bounded by the run's duration, every CLI call by its deadline. `npm run chaos` runs it for
 * 60 s; `npm run chaos -- --long` for 10 minutes; the short test in npm test for 20 s.
 */
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { execFileSync, spawn } from 'node:child_process';
import { Lab, type NsDaemon } from '../helpers/netns';
import { MAIN, osPipe } from '../helpers/daemon';
import { fdtake } from '../../src/node/fdtake';

export interface ChaosOptions {
  /** How long the workloads run (ms). */
  durationMs: number;
  /** Seed for the fault schedule. */
  seed?: number;
  log?: (line: string) => void;
}

export interface ChaosReport {
  durationMs: number;
  /** what the links did */
  network: string;
  faults: string[];
  sent: number;
  received: number;
  lost: number;
  duplicated: number;
  /** sends the CLI reported as failed (not counted as sent: nothing was promised) */
  sendErrors: number;
  /** recv clients killed with -9 in the middle of a call */
  killedReceivers: number;
  /** of those, killed after writing their message out (counted as received) */
  killedAfterReceiving: number;
  streamExpected: number;
  streamGot: number;
  streamEqual: boolean;
  procsStarted: number;
  procsFinished: number;
  /** `wait`s repeated after a call failed with an error a retry can cure (a partition, a stop) */
  waitRetries: number;
  /** stream readers started again after one failed that way (each resumes at the stream's offset) */
  streamRetries: number;
  /** the errors of `wait`s and stream readers given up on (not retryable, or out of attempts) */
  gaveUp: string[];
  hung: number;
  /** stream readers killed with SIGKILL (the others get SIGTERM, as from `timeout`) */
  streamSigkilled: number;
  /**
   * Bytes a reader after a SIGKILLed one got again: the documented window of `circuit stdout`
   * writing a socket pair itself (a SIGKILL between a write(2) and the send of its
   * acknowledgement repeats that one write, at most 64 KiB, docs/cli.md). A reader into a pipe
   * has its server write, so nothing may repeat after it; any other difference makes the stream
   * unequal.
   */
  streamRepeated: number;
  /**
   * Each call that outlived its deadline: the command, the host it ran on, when it began and
   * ended (s into the run), the faults and the daemons' log lines from 5 s before it began to
   * its deadline, so a hang can be traced to its cause.
   */
  hungCalls: string[];
  /** Each message lost: when its send returned, and the kills, faults and daemon lines after it. */
  lostMessages: string[];
  /** Where the whole run's log (every event, each daemon's ops.log) was kept, when an invariant broke. */
  keptLog?: string;
  rssBeforeMb: number[];
  rssAfterMb: number[];
  /** Daemons still running at the end (every one must be: a daemon never crashes on input or faults). */
  daemonsAlive: number;
  daemons: number;
  fdsBefore: number[];
  fdsAfter: number[];
}

/** CLI calls that run longer than this are counted as hung (and killed). */
const DEADLINE_MS = 30_000;

function rand(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let x = Math.imul(a ^ (a >>> 15), a | 1);
    x ^= x + Math.imul(x ^ (x >>> 7), x | 61);
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296;
  };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Errors an operator's script retries: the call's server was cut off or stopped (it failed at
 * once, as it should, rather than hang) or, declared dead, is not back in the caller's view yet;
 * or a reader killed a moment ago still holds the stream's lease until its server sees its
 * connection end. Anything else is not retried.
 */
const RETRYABLE = /stopped answering|declared dead|left the cluster|unreachable|not in this server's view|EHOSTDOWN|ECONNRESET|ECONNREFUSED|ETIMEDOUT|already has a reader/;

/** At most this many attempts of one retried call, backing off from 250 ms to 2 s. */
const MAX_ATTEMPTS = 30;
const backoff = (attempt: number) => Math.min(2000, 250 * 2 ** attempt);

function rssMb(pid: number): number {
  try {
    return Number(/VmRSS:\s+(\d+)/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0) / 1024;
  } catch {
    return 0;
  }
}

function fds(pid: number): number {
  try {
    return fs.readdirSync(`/proc/${pid}/fd`).length;
  } catch {
    return 0;
  }
}

/**
 * The daemon's process. `ip netns exec` execs the command in place, so that is the process the
 * lab spawned; its children are the processes it runs and its orphan watchdog (this once took
 * the first child, so the SIGSTOP faults stopped the watchdog, or a churn process that then
 * exited, instead of the daemon). Checked by the executable, in case a wrapper forks.
 */
function daemonPid(d: NsDaemon): number {
  const node = fs.realpathSync(process.execPath);
  const isNode = (pid: number) => {
    try {
      return fs.readlinkSync(`/proc/${pid}/exe`) === node;
    } catch {
      return false;
    }
  };
  if (isNode(d.proc.pid!)) return d.proc.pid!;
  try {
    const kids = execFileSync('pgrep', ['-P', String(d.proc.pid)]).toString().split(/\s+/).filter(Boolean).map(Number);
    return kids.find(isNode) ?? d.proc.pid!;
  } catch {
    return d.proc.pid!;
  }
}

interface CallResult {
  code: number | null;
  out: Buffer;
  err: string;
  hung: boolean;
  killed: boolean;
}

export async function runChaos(opts: ChaosOptions): Promise<ChaosReport> {
  const log = opts.log ?? (() => {});
  const rnd = rand(opts.seed ?? Date.now());
  const lab = new Lab(3);
  const r: ChaosReport = {
    durationMs: opts.durationMs, network: '', faults: [], sent: 0, received: 0, lost: 0, duplicated: 0, sendErrors: 0, killedReceivers: 0, killedAfterReceiving: 0,
    streamExpected: 0, streamGot: 0, streamEqual: false, procsStarted: 0, procsFinished: 0, waitRetries: 0, streamRetries: 0, gaveUp: [], hung: 0, hungCalls: [], lostMessages: [], streamSigkilled: 0, streamRepeated: 0,
    rssBeforeMb: [], rssAfterMb: [], daemonsAlive: 0, daemons: 3, fdsBefore: [], fdsAfter: [],
  };
  let hung = 0;
  let errors = 0;
  const t0 = Date.now();
  const secs = (t: number) => ((t - t0) / 1000).toFixed(1);
  /** Faults and daemon log lines, stamped as they happen (ms since t0). */
  const events: Array<[number, string]> = [];
  const note = (what: string) => events.push([Date.now(), what]);
  /** What happened around a call that hung, for the report. */
  const describeHang = (h: number, args: string[], began: number, err: string) => {
    const from = began - 5000;
    const around = events.filter(([t]) => t >= from).map(([t, l]) => `    ${secs(t)} s ${l}`);
    return `${args.join(' ')} at host ${h + 1}, ${secs(began)} s → ${secs(Date.now())} s${err.trim() ? ` (stderr: ${err.trim()})` : ''}\n${around.join('\n')}`;
  };
  /** One CLI call inside a host's namespace, bounded by DEADLINE_MS; `kill` lets chaos end it. */
  // With `pipe`, its stdout is an OS pipe (as a shell's `|`), otherwise a socket pair (node's
  // own); `circuit stdout` has its server write into either (a socket through native/fdtake).
  const call = (h: number, args: string[], input?: Buffer | string, onSpawn?: (kill: (sig?: NodeJS.Signals) => void) => void, pipe = false): Promise<CallResult> =>
    new Promise((resolve) => {
      const d = lab.daemons[h]!;
      const fifo = pipe ? osPipe() : undefined;
      const p = spawn('ip', ['netns', 'exec', d.host.ns, process.execPath, MAIN, ...args, '-d', d.url], { stdio: ['pipe', fifo?.writeFd ?? 'pipe', 'pipe'], env: { PATH: process.env.PATH ?? '/usr/bin:/bin' } });
      if (fifo) fs.closeSync(fifo.writeFd);
      // an OS pipe ends once its last writer, the CLI or its server, closed it
      const drained = fifo ? new Promise((res) => fifo.read.once('close', res)) : Promise.resolve();
      const out: Buffer[] = [];
      let err = '';
      let late = false;
      let killed = false;
      (fifo?.read ?? p.stdout!).on('data', (c: Buffer) => out.push(c));
      p.stderr!.on('data', (c) => (err += c));
      p.stdin!.on('error', () => {});
      p.stdin!.end(input ?? '');
      const began = Date.now();
      const t = setTimeout(() => {
        late = true;
        hung++;
        const what = describeHang(h, args, began, err);
        r.hungCalls.push(what);
        log(`chaos: HUNG: ${what}`);
        p.kill('SIGKILL');
        fifo?.read.destroy(); // a server still holding the pipe open is hung too
      }, DEADLINE_MS);
      onSpawn?.((sig: NodeJS.Signals = 'SIGKILL') => {
        if (!late) note(`chaos kills ${args.join(' ')} at host ${h + 1} with ${sig} (began ${secs(began)} s)`);
        killed = true;
        p.kill(sig);
      });
      p.on('close', (code) => {
        void drained.then(() => {
          clearTimeout(t);
          if (code !== 0 && !killed && !late) note(`${args.join(' ')} at host ${h + 1} (began ${secs(began)} s): exit ${code}: ${err.trim()}`);
          if (code !== 0 && !killed && errors++ < 3) log(`chaos: ${args.join(' ')} at host ${h + 1}: exit ${code}: ${err.trim()}`);
          resolve({ code, out: Buffer.concat(out), err, hung: late, killed });
        });
      });
    });
  try {
    // netem on every host's link: both directions of each veth pair see it
    // Where the kernel lacks sch_netem, 1% loss comes from iptables' statistic match instead,
    // and the report says that delay, duplication and reordering were not applied.
    let network = 'netem 5±3 ms, 1% loss, 1% duplication, 5% reordering';
    for (const h of lab.hosts) {
      try {
        execFileSync('ip', ['netns', 'exec', h.ns, 'tc', 'qdisc', 'add', 'dev', 'eth0', 'root', 'netem', 'delay', '5ms', '3ms', 'loss', '1%', 'duplicate', '1%', 'reorder', '5%'], { stdio: 'pipe' });
      } catch {
        execFileSync('ip', ['netns', 'exec', h.ns, 'iptables', '-A', 'INPUT', '-i', 'eth0', '-m', 'statistic', '--mode', 'random', '--probability', '0.01', '-j', 'DROP']);
        network = 'no netem in this kernel: 1% loss (iptables statistic) only; no delay, duplication or reordering';
      }
    }
    r.network = network;
    const at = (i: number) => ['-a', `${lab.hosts[i]!.addr}:0`];
    const a = await lab.start(lab.hosts[0]!, at(0));
    await lab.start(lab.hosts[1]!, [...at(1), '-j', a.url]);
    await lab.start(lab.hosts[2]!, [...at(2), '-j', a.url]);
    const [X1] = [a.id];
    lab.daemons.forEach((d, i) => {
      let part = '';
      d.proc.stderr!.on('data', (c: Buffer) => {
        const lines = (part + c.toString()).split('\n');
        part = lines.pop() ?? '';
        for (const l of lines) if (l.trim()) note(`daemon ${i + 1}: ${l}`);
      });
    });
    // wait for one view
    for (let i = 0; i < 100; i++) {
      const ls = await call(2, ['ls', '/']);
      if (lab.daemons.every((d) => ls.out.toString().includes(d.id))) break;
      await sleep(200);
    }
    const pids = lab.daemons.map(daemonPid);
    r.rssBeforeMb = pids.map(rssMb);
    r.fdsBefore = pids.map(fds);
    const end = Date.now() + opts.durationMs;
    log(`chaos: 3 hosts (${lab.daemons.map((d) => d.id).join(' ')}), ${r.network}; ${opts.durationMs / 1000} s`);

    // ---- workload 1: a work queue across hosts ------------------------------------------
    const ch = `/${X1}/chaos/q`;
    await call(1, ['mkchan', ch, '4']);
    const got = new Map<string, number>();
    const sentOk = new Set<string>();
    const sentAt = new Map<string, number>();
    let producing = true;
    const producer = (async () => {
      for (let i = 0; Date.now() < end; i++) {
        const msg = `job-${i}`;
        const res = await call(1, ['send', ch], msg);
        if (res.code === 0) {
          sentOk.add(msg);
          sentAt.set(msg, Date.now());
        }
        else r.sendErrors++;
      }
      producing = false;
    })();
    const consumer = (async () => {
      // runs past the end until the queue is drained (bounded: 60 s more at most)
      const stop = end + 60_000;
      while (Date.now() < stop) {
        if (!producing && [...sentOk].every((m) => got.has(m))) break;
        let kill: (() => void) | undefined;
        const pending = call(2, ['recv', ch], undefined, (k) => (kill = k));
        // now and then a receiver dies mid-call (kill -9): its message must stay in the channel
        if (Date.now() < end && rnd() < 0.15) {
          const at = 200 + rnd() * 1500;
          setTimeout(() => kill?.(), at);
        }
        // A recv started while the producer's last send had not yet returned can be left waiting
        // on an empty channel once every message is in (another receiver took the last one): that
        // is a recv correctly blocking, not a hung call, so it is stopped then and not counted.
        let idle = false;
        const watch = setInterval(() => {
          if (!producing && [...sentOk].every((m) => got.has(m))) {
            idle = true;
            kill?.();
          }
        }, 200);
        const res = await pending;
        clearInterval(watch);
        if (idle && res.out.length === 0) break;
        if (res.killed) r.killedReceivers++;
        // a receiver killed after it wrote its message out (it lingers up to a second to close
        // its connection) did receive it
        if (res.killed && res.out.length > 0) r.killedAfterReceiving++;
        if (res.code === 0 || (res.killed && res.out.length > 0)) {
          const m = res.out.toString();
          got.set(m, (got.get(m) ?? 0) + 1);
          note(`recv got ${m}${res.killed ? ' (then killed)' : ''}`);
        } else note(`recv ${res.killed ? 'killed' : `failed (exit ${res.code}): ${res.err.trim()}`}, nothing written`);
      }
    })();

    // ---- workload 2: a stream across hosts ----------------------------------------------
    const stream = (async () => {
      const p = `/${X1}/chaos/stream`;
      const n = 200_000;
      const script = `seq 1 ${n}`;
      const want = execFileSync('sh', ['-c', script], { maxBuffer: 64 << 20 });
      r.streamExpected = want.length;
      await call(2, ['mkproc', p], JSON.stringify({ Path: '/bin/sh', Args: ['-c', script] }));
      // read it in pieces from host 3, each reader interrupted by a timeout, then one to the end
      // (as `timeout` does, with SIGTERM, or with SIGKILL: see the stream check below)
      const parts: Array<{ out: Buffer; sigkilled: boolean }> = [];
      for (let i = 0; i < 3 && Date.now() < end; i++) {
        let kill: ((sig?: NodeJS.Signals) => void) | undefined;
        // readers alternate between an OS pipe (the server writes into it: a SIGKILL repeats
        // nothing) and a socket pair (the same through native/fdtake; where the CLI writes
        // itself, without the add-on, a SIGKILL may repeat its last write)
        const pipe = i % 2 === 0;
        const pending = call(2, ['stdout', p], undefined, (k) => (kill = k), pipe);
        const sig: NodeJS.Signals = rnd() < 0.5 ? 'SIGTERM' : 'SIGKILL';
        setTimeout(() => kill?.(sig), 300 + rnd() * 700);
        const res = await pending;
        const sigkilled = res.killed && sig === 'SIGKILL';
        // only a reader that writes itself may repeat a write: with the add-on built, none does
        parts.push({ out: res.out, sigkilled: sigkilled && !pipe && !fdtake() });
        if (sigkilled) r.streamSigkilled++;
      }
      // the lease of a reader killed a moment ago goes once its server sees its connection end
      // a reader whose server a partition cut off fails at once; like an operator's script, start
      // a new one, which resumes at the offset the last left off (streams are exactly-once by
      // offset), so the parts concatenated must equal the bytes produced
      const stop = end + 60_000;
      for (let attempt = 0; ; attempt++) {
        const rest = await call(2, ['stdout', p], undefined, undefined, true);
        parts.push({ out: rest.out, sigkilled: false });
        if (rest.code === 0) break;
        if (!RETRYABLE.test(rest.err) || attempt + 1 >= MAX_ATTEMPTS || Date.now() > stop) {
          r.gaveUp.push(`stdout: exit ${rest.code}: ${rest.err.trim()}`);
          break;
        }
        r.streamRetries++;
        await sleep(backoff(attempt));
      }
      const gotBytes = Buffer.concat(parts.map((x) => x.out));
      r.streamGot = gotBytes.length;
      const cmp = compareParts(want, parts);
      r.streamRepeated = cmp.repeated;
      r.streamEqual = cmp.ok;
      await call(2, ['scrub', p]);
    })();

    // ---- workload 3: process churn -------------------------------------------------------
    const churn = (async () => {
      for (let i = 0; Date.now() < end; i++) {
        const p = `/${lab.daemons[1]!.id}/chaos/churn-${i}`;
        const mk = await call(2, ['mkproc', p], JSON.stringify({ Path: '/bin/sh', Args: ['-c', 'echo hi; sleep 0.1'] }));
        if (mk.code !== 0) continue;
        r.procsStarted++;
        // a wait whose server a partition cut off fails at once: retry it, bounded
        for (let attempt = 0; ; attempt++) {
          const w = await call(2, ['wait', p]);
          if (w.code === 0) {
            r.procsFinished++;
            break;
          }
          if (!RETRYABLE.test(w.err) || attempt + 1 >= MAX_ATTEMPTS || Date.now() > end + 60_000) {
            r.gaveUp.push(`wait: exit ${w.code}: ${w.err.trim()}`);
            break;
          }
          r.waitRetries++;
          await sleep(backoff(attempt));
        }
        await call(2, ['scrub', p]);
      }
    })();

    // ---- faults ------------------------------------------------------------------------------
    const faults = (async () => {
      while (Date.now() + 4000 < end) {
        await sleep(1000 + rnd() * 3000);
        const f = rnd();
        const victim = 1 + Math.floor(rnd() * 2); // host 2 or 3: host 1 holds the queue and the stream
        const d = lab.daemons[victim]!;
        if (f < 0.5) {
          const ms = 500 + Math.floor(rnd() * 2000);
          r.faults.push(`partition host ${victim + 1} ${ms} ms`);
          note(`fault: partition host ${victim + 1} for ${ms} ms`);
          lab.link(d.host, false);
          await sleep(ms);
          lab.link(d.host, true);
          note(`fault: host ${victim + 1} linked again`);
        } else {
          const ms = 300 + Math.floor(rnd() * 1500);
          r.faults.push(`SIGSTOP daemon ${victim + 1} ${ms} ms`);
          const pid = daemonPid(d);
          note(`fault: SIGSTOP daemon ${victim + 1} for ${ms} ms`);
          try {
            process.kill(pid, 'SIGSTOP');
            await sleep(ms);
            process.kill(pid, 'SIGCONT');
          } catch (e) {
            // a daemon that died (it must not: the check at the end says so) ends the faults
            note(`fault: daemon ${victim + 1} is gone: ${(e as Error).message}`);
            break;
          }
          note(`fault: SIGCONT daemon ${victim + 1}`);
        }
      }
    })();

    await Promise.all([producer, consumer, stream, churn, faults]);
    r.sent = sentOk.size;
    for (const m of sentOk) {
      if (got.has(m)) continue;
      r.lost++;
      const at = sentAt.get(m) ?? t0;
      const around = events.filter(([t, l]) => t >= at - 1000 && t <= at + 20_000 && /^(chaos kills|fault|recv)|daemon \d: .*(receiver|return|dead|joined)/.test(l));
      r.lostMessages.push(`${m}, sent by ${secs(at)} s\n${around.map(([t, l]) => `    ${secs(t)} s ${l}`).join('\n')}`);
    }
    for (const c of got.values()) if (c > 1) r.duplicated += c - 1;
    r.received = got.size; // distinct messages; one whose send reported failure may arrive too
    r.hung = hung;
    await sleep(1000);
    r.rssAfterMb = pids.map(rssMb);
    r.fdsAfter = pids.map(fds);
    r.daemonsAlive = lab.daemons.filter((d) => d.proc.exitCode === null && d.proc.signalCode === null).length;
    for (const [i, d] of lab.daemons.entries()) if (d.proc.exitCode !== null || d.proc.signalCode !== null) r.gaveUp.push(`daemon ${i + 1} died (${d.proc.signalCode ?? `exit ${d.proc.exitCode}`}); its last lines:\n${d.stderr().split('\n').slice(-15).join('\n')}`);
    if (r.lost || r.duplicated || r.hung || !r.streamEqual || r.procsFinished !== r.procsStarted || r.daemonsAlive !== r.daemons) r.keptLog = keepLog(lab, events, t0, opts);
    return r;
  } finally {
    lab.destroy();
  }
}

/**
 * Keeps what a broken run leaves to look at, before the lab goes: every event of the run (faults,
 * kills, calls that failed, every daemon line) and each daemon's ops.log (every operation with its
 * origin and result), in a folder under the system's temporary one. Returns its path.
 */
function keepLog(lab: Lab, events: Array<[number, string]>, t0: number, opts: ChaosOptions): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `circuit-chaos-seed${opts.seed}-`));
  fs.writeFileSync(path.join(dir, 'events.log'), events.map(([t, l]) => `${((t - t0) / 1000).toFixed(1)} s ${l}`).join('\n') + '\n');
  for (const [i, d] of lab.daemons.entries()) {
    const ops = path.join(d.varDir, 'ops.log');
    if (fs.existsSync(ops)) fs.copyFileSync(ops, path.join(dir, `daemon-${i + 1}.ops.log`));
  }
  return dir;
}

/** One write of `circuit stdout`, the most a SIGKILL between a write and its ack repeats. */
const WRITE_MAX = 64 * 1024;

/**
 * Whether the readers' parts, in order, make exactly the bytes produced, where the part after a
 * SIGKILLed reader that wrote its socket pair itself (`sigkilled`) may begin up to one write
 * before the end of the last (and nowhere else).
 */
export function compareParts(want: Buffer, parts: Array<{ out: Buffer; sigkilled: boolean }>): { ok: boolean; repeated: number } {
  let pos = 0;
  let repeated = 0;
  for (let i = 0; i < parts.length; i++) {
    const b = parts[i]!.out;
    const maxBack = i > 0 && parts[i - 1]!.sigkilled ? Math.min(WRITE_MAX, pos) : 0;
    let back = -1;
    for (let k = 0; k <= maxBack; k++) {
      const from = pos - k;
      if (from + b.length > want.length) continue;
      const head = Math.min(256, b.length);
      if (!want.subarray(from, from + head).equals(b.subarray(0, head))) continue;
      if (want.subarray(from, from + b.length).equals(b)) {
        back = k;
        break;
      }
    }
    if (back < 0) return { ok: false, repeated };
    repeated += back;
    pos += b.length - back;
  }
  return { ok: pos === want.length, repeated };
}

/** The report as a table (markdown, so RELIABILITY.md can quote it). */
export function table(r: ChaosReport): string {
  const mb = (xs: number[]) => xs.map((x) => x.toFixed(0)).join(' / ');
  const rows: Array<[string, string]> = [
    ['duration', `${r.durationMs / 1000} s`],
    ['network', r.network],
    ['faults', `${r.faults.length} (${r.faults.filter((f) => f.startsWith('partition')).length} partitions, ${r.faults.filter((f) => f.startsWith('SIGSTOP')).length} SIGSTOPs), ${r.killedReceivers} receivers killed -9 (${r.killedAfterReceiving} after writing their message out)`],
    ['messages sent (send exit 0)', String(r.sent)],
    ['messages received', String(r.received)],
    ['messages lost', String(r.lost)],
    ['messages duplicated', String(r.duplicated)],
    ['sends that failed (exit 1)', String(r.sendErrors)],
    ['stream bytes expected / got / equal', `${r.streamExpected} / ${r.streamGot} / ${r.streamEqual ? 'yes' : 'NO'}`],
    ['stream readers SIGKILLed / bytes repeated after them (a socket-pair reader\'s write→ack window)', `${r.streamSigkilled} / ${r.streamRepeated}`],
    ['processes started / finished', `${r.procsStarted} / ${r.procsFinished}`],
    ['retried after error (wait / stream reader)', `${r.waitRetries} / ${r.streamRetries}`],
    ['given up after error', r.gaveUp.length ? r.gaveUp.join('; ').replace(/\|/g, '/') : '0'],
    [`calls outliving their deadline (${DEADLINE_MS / 1000} s)`, String(r.hung)],
    ['daemon RSS before → after (MB)', `${mb(r.rssBeforeMb)} → ${mb(r.rssAfterMb)}`],
    ['daemons alive at the end', `${r.daemonsAlive} of ${r.daemons}`],
    ['daemon fds before → after', `${r.fdsBefore.join(' / ')} → ${r.fdsAfter.join(' / ')}`],
  ];
  return ['| measure | value |', '|---|---|', ...rows.map(([k, v]) => `| ${k} | ${v} |`)].join('\n');
}
