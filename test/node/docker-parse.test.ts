import t from 'tap';
import { parseDockerRun, engineSignal, emptyRun, connectEngine } from '../../src/node/kinds/docker';
import { CircuitError } from '../../src/kit/errors';

t.test('docker parse: keys are case-insensitive and unknown keys are ignored', async (t) => {
  const run = parseDockerRun(JSON.stringify({
    image: 'busybox', MEMORY: 1 << 26, cpuShares: 512, Volume: ['/a:/b:ro'], dir: '/tmp', ENTRY: '/bin/sh',
    env: ['A=1'], path: '/bin/echo', args: ['x'], scrub: true, Colour: 'blue',
  }));
  t.same(run, {
    Image: 'busybox', Memory: 1 << 26, CpuShares: 512, Lxc: null, Volume: ['/a:/b:ro'], Dir: '/tmp',
    Entry: '/bin/sh', Env: ['A=1'], Path: '/bin/echo', Args: ['x'], Scrub: true,
  });
});

t.test('docker parse: absent and null fields take their zero values', async (t) => {
  t.same(parseDockerRun('{}'), emptyRun());
  t.same(parseDockerRun('{"Image": null, "Env": null, "Memory": null}'), emptyRun());
});

t.test('docker parse: Lxc is accepted (and kept, so the element can warn)', async (t) => {
  t.same(parseDockerRun('{"Image":"x","Lxc":["lxc.aa_profile=unconfined"]}').Lxc, ['lxc.aa_profile=unconfined']);
});

t.test('docker parse: bad JSON and bad types are EINVAL "command json not parsing"', async (t) => {
  const bad = ['{', '[]', '3', 'null', '{"Image":3}', '{"Memory":-1}', '{"Memory":1.5}', '{"Memory":"1g"}',
    '{"Env":"A=1"}', '{"Args":[1]}', '{"Scrub":"yes"}', '{"Image":"a",}'];
  for (const json of bad) {
    t.throws(() => parseDockerRun(json), { code: 'EINVAL', message: /^command json not parsing: / }, json);
  }
});

t.test('docker signal: names like the proc element, or a number', async (t) => {
  t.equal(engineSignal('term'), 'SIGTERM');
  t.equal(engineSignal(' SIGterm \n'), 'SIGTERM');
  t.equal(engineSignal('KILL'), 'SIGKILL');
  t.equal(engineSignal('usr1'), 'SIGUSR1');
  t.equal(engineSignal('9'), '9');
  for (const s of ['', 'TERMINATE', 'SIG', '0', '65', 'SIGRTMIN', '-9']) {
    t.throws(() => engineSignal(s), { code: 'EINVAL', message: /^signal name not recognized/ }, JSON.stringify(s));
  }
});

t.test('docker engine: a missing engine is a clear "cannot use docker" error', async (t) => {
  const saved = process.env.DOCKER_HOST;
  process.env.DOCKER_HOST = 'unix:///tmp/circuit-no-such-docker.sock';
  t.teardown(() => {
    if (saved === undefined) delete process.env.DOCKER_HOST;
    else process.env.DOCKER_HOST = saved;
  });
  const err = await connectEngine().then(() => null, (e: unknown) => e);
  t.ok(err instanceof CircuitError);
  t.match((err as Error).message, /^cannot use docker: engine at unix:\/\/\/tmp\/circuit-no-such-docker\.sock: /);
});
