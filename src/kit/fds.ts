import { closeSync } from 'node:fs';

/** Closes each descriptor, ignoring any error (one already closed, or never to be read). */
export function closeQuietly(...fds: number[]): void {
  for (const fd of fds) {
    try {
      closeSync(fd);
    } catch {
      // already closed
    }
  }
}
