/**
 * The docker element: time from make to the first byte of the container's stdout, median of N.
 * The element is made directly (DockerElement.make over dockerode, no daemon in between) with a
 * busybox image imported locally, running `/bin/echo x`; it is scrubbed outside the timed part.
 * Baseline, interleaved: `docker run --rm -i IMAGE /bin/echo x` spawned, to its first stdout byte
 * (what the original did for every container, give or take `-i`).
 */
import { spawn } from 'node:child_process';
import type Docker from 'dockerode';
import { DockerElement, connectEngine, emptyRun, removeAllContainers } from '../src/node/kinds/docker';
import type { ElementContext } from '../src/node/element';
import { systemClock } from '../src/kit/clock';
import { ensureDocker, ensureImage } from '../test/helpers/docker';
import { median, notMeasured, nowMs, quantile, round, type Measure } from './util';

const MEASURE = 'docker make → first stdout byte (median)';

export async function benchDocker(opts: { quick: boolean }): Promise<Measure[]> {
  const n = opts.quick ? 3 : 15;
  let engine: Docker;
  let image: string;
  try {
    await ensureDocker();
    image = await ensureImage();
    engine = await connectEngine();
  } catch (err) {
    return [notMeasured(MEASURE, `not measured: no Docker engine (${(err as Error).message})`)];
  }
  try {
    await viaElement(engine, image, -1); // warm-up: image layers, sockets, JIT
    await viaCli(image);
    const el: number[] = [];
    const cli: number[] = [];
    for (let i = 0; i < n; i++) {
      el.push(await viaElement(engine, image, i));
      cli.push(await viaCli(image));
    }
    const m = median(el);
    const b = median(cli);
    return [{
      measure: MEASURE,
      value: round(m, 1),
      unit: 'ms',
      baseline: round(b, 1),
      ratio: round(m / b, 3),
      note: `n=${n}, p90 ${round(quantile(el, 0.9), 1)} ms; baseline: docker run --rm -i … to its first byte`,
    }];
  } finally {
    await removeAllContainers();
  }
}

async function viaElement(engine: Docker, image: string, i: number): Promise<number> {
  const ctx: ElementContext = { path: `/X0000000000000000/bench/docker${i}`, clock: systemClock, log: () => {}, detach: () => {} };
  const t0 = nowMs();
  const el = await DockerElement.make({ ...emptyRun(), Image: image, Path: '/bin/echo', Args: ['x'] }, ctx, engine);
  const r = await el.openOutput('stdout');
  const first = await r.read(1);
  const ms = nowMs() - t0;
  if (!first) throw new Error('no output from the container');
  await r.release();
  await el.scrub();
  return ms;
}

function viaCli(image: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const t0 = nowMs();
    let ms = NaN;
    const p = spawn('docker', ['run', '--rm', '-i', image, '/bin/echo', 'x'], { stdio: ['pipe', 'pipe', 'ignore'] });
    p.stdout.once('data', () => (ms = nowMs() - t0));
    p.stdin.end();
    p.on('error', reject);
    p.on('close', (code) => (code === 0 && !Number.isNaN(ms) ? resolve(ms) : reject(new Error(`docker run exited ${code}`))));
  });
}
