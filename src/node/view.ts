import { EventEmitter } from 'node:events';
import type { Member } from '../api/types';

/**
 * A server's membership view: who is in the cluster, as this server sees it, with join and
 * leave events. A lone server's view holds only itself; the mesh replaces it with its membership.
 */
export class LocalView extends EventEmitter {
  constructor(readonly self: () => Member) {
    super();
  }
  members(): Member[] {
    return [this.self()];
  }
}
