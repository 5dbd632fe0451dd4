import fs = require('node:fs');

/** Whether a process with this pid exists (signal 0 probes; EPERM means it runs as another user). */
export function processRuns(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** This process's pid namespace, as /proc/self/ns/pid names it (`pid:[4026531836]`), or undefined without /proc. */
export function pidNamespace(): string | undefined {
  try {
    return fs.readlinkSync('/proc/self/ns/pid');
  } catch {
    return undefined;
  }
}
