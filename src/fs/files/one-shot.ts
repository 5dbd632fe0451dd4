import type { FileSpec } from './control';
import { type Render, renderedOnce } from './snapshot';

/**
 * A blocking one-shot: the first read of an open waits for one answer (a message, an event, the
 * process's exit), later reads slice it, then EOF. One open is one answer. The wait is
 * interruptible: the caller is watched and the call aborted, and an aborted call took nothing.
 */
export function oneShot(name: string, render: Render): FileSpec {
  return { name, mode: 'r', blocking: true, open: () => renderedOnce(render) };
}
