import { CMD_DEFAULTS, processFiles } from './proc';

/** A container's exit status: the engine's inspection has it in State.ExitCode (128+n for signal n). */
export function containerExit(waited: unknown): string {
  const code = (waited as { State?: { ExitCode?: unknown } } | null)?.State?.ExitCode;
  return `${typeof code === 'number' ? code : -1}\n`;
}

/** A container's files (docs/docker.md): a proc's, with the Run for its spec. */
export const docker = processFiles({
  field: 'Run',
  defaults: { ...CMD_DEFAULTS, Image: '', Memory: 0, CpuShares: 0, Lxc: null, Volume: null, Entry: '' },
  exit: containerExit,
});
