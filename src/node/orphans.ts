/**
 * No orphans: the process groups a daemon started die with it, however it dies (kill -9
 * included), and so does everything in them (`sh -c 'sleep 100'`'s sleep too).
 *
 * Mechanism. At its first process, the daemon starts one watchdog: a small `awk` program in its
 * own session, whose stdin is a pipe from the daemon. The daemon writes `+PGID` when it starts a
 * process group and `-PGID` once that group is empty. The watchdog does nothing but read; when
 * the pipe ends (the daemon exited, normally or not: the kernel closes its end), it sends TERM to
 * every group still listed, then KILL a second later. A graceful shutdown has already ended them
 * (proc.ts terminate), so the watchdog then finds nothing to do.
 *
 * Why this and not the others: `setpriv --pdeathsig` reaches the direct child only, not the
 * processes it forks; a cgroup per server needs a writable cgroup tree (root, systemd
 * delegation); a record in --var is reaped only at a next start, and the default --var is new on
 * each start. The watchdog costs one ~1 MB process per daemon that runs processes.
 *
 * Limits: a process that leaves its group (setsid, setpgid: a daemonising program) is no longer
 * ours to find; killing the watchdog itself (kill -9 of its pid) disarms it.
 */
import { spawn, type ChildProcess } from 'node:child_process';

// A group is listed once per +, unlisted by -; END (stdin closed) ends whatever is listed.
const WATCHDOG = [
  '/^\\+[0-9]+$/ { g[substr($0, 2)] = 1; next }',
  '/^-[0-9]+$/ { delete g[substr($0, 2)]; next }',
  'END {',
  '  n = 0; for (p in g) { system("kill -TERM -" p " 2>/dev/null"); n++ }',
  '  if (n) { system("sleep 1"); for (p in g) system("kill -KILL -" p " 2>/dev/null") }',
  '}',
].join('\n');

let watchdog: ChildProcess | undefined;
let broken = false;

function write(line: string): void {
  if (broken) return;
  if (!watchdog) {
    try {
      watchdog = spawn('awk', [WATCHDOG], { detached: true, stdio: ['pipe', 'ignore', 'ignore'] });
    } catch {
      broken = true;
      return;
    }
    watchdog.on('error', () => (broken = true));
    watchdog.stdin!.on('error', () => (broken = true));
    // Neither the watchdog nor its pipe keeps the daemon's event loop alive.
    watchdog.unref();
    (watchdog.stdin as unknown as { unref?: () => void }).unref?.();
  }
  watchdog.stdin!.write(line + '\n');
}

/** A process group we started: it must not outlive this process. */
export function guardGroup(pgid: number): void {
  write(`+${pgid}`);
}

/** The group's leader exited: once nobody is left in the group, it is no longer ours to end
 *  (its number may be reused); while its children live, the watchdog keeps it listed. */
export function releaseGroup(pgid: number): void {
  if (!groupAlive(pgid)) write(`-${pgid}`);
}

/** True while any process of the group lives. */
export function groupAlive(pgid: number): boolean {
  try {
    process.kill(-pgid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** The watchdog's pid (tests), undefined before the first process group. */
export function watchdogPid(): number | undefined {
  return watchdog?.pid;
}
