import { bind, type Element, type ElementState } from '../element';
import type { Member } from '../../api/types';
import { VERSION } from '../../kit/version';

/** What the server element reads of its server. */
export interface ServerFacts {
  url: string;
  id: string;
  started: Date;
  view: { members(): Member[] };
  counts(): { anchors: number; elements: Record<string, number> };
}

/**
 * The element at every server anchor (docs/fs.md, `server`): created with the server, never made
 * by hand, and scrubbing it does nothing. Its peek adds to the original's Addr and Joined what an
 * operator asks first: version, pid, uptime, and what the server holds.
 */
export class ServerElement implements ElementState {
  constructor(readonly server: ServerFacts) {}
  peek(): unknown {
    const s = this.server;
    const { anchors, elements } = s.counts();
    return {
      Addr: s.url,
      Joined: s.started.toISOString(),
      Id: s.id,
      Version: VERSION,
      Pid: process.pid,
      Uptime: Math.round((Date.now() - s.started.getTime()) / 1000),
      Anchors: anchors,
      Elements: elements,
      Members: s.view.members().filter((m) => m.state === 'alive' || m.state === 'suspect').length,
    };
  }
  scrub(): void {}
}

/**
 * The server kind is made with its server, never by `make`: it is not in the registration list.
 * Its verbs (members, join, stop, log, stk) are the server's own.
 */
export function serverElement(facts: ServerFacts): Element {
  return bind({ kind: 'server', verbs: {} }, new ServerElement(facts));
}
