import type { Kind } from '../../api/types';
import type { FileSpec } from '../files/control';
import { error, helpFile } from '../files/element';
import { chan } from './chan';
import { dns } from './dns';
import { docker } from './docker';
import { proc } from './proc';
import { server } from './server';
import { subscription } from './subscription';

/**
 * The registration list of the mount: each kind's file table, one line each. A kind's
 * directory holds its files, then `help` (generated from the table) and `error`.
 */
export const FS_KINDS: ReadonlyArray<{ kind: Kind; files: readonly FileSpec[] }> = [
  { kind: 'server', files: server },
  { kind: 'chan', files: chan },
  { kind: 'proc', files: proc },
  { kind: 'docker', files: docker },
  { kind: 'dns', files: dns },
  { kind: '@join', files: subscription },
  { kind: '@leave', files: subscription },
];

/** Every file of an element directory, `help` and `error` included. */
export function directory(files: readonly FileSpec[]): readonly FileSpec[] {
  const all: FileSpec[] = [...files, helpFile(() => all), error];
  return all;
}
