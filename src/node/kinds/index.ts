import { defineKind, type Kind } from '../element';
import { chan } from './chan';
import { proc } from './proc';
import { docker } from './docker';
import { dns } from './dns';
import { join, leave } from './subscription';

/**
 * The registration list: every kind a server can make, one line each. A kind is one module in
 * this folder (docs/kinds.md); the server, the mount and the CLI find kinds here, never by name.
 */
export const KINDS: readonly Kind[] = [
  defineKind(chan),
  defineKind(proc),
  defineKind(docker),
  defineKind(dns),
  defineKind(join),
  defineKind(leave),
];
