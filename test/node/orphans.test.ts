import t from 'tap';
import * as fs from 'node:fs';
import { startServer, cli, eventually, alive } from '../helpers/daemon';

/**
 * No orphans (issue 12): processes a server started, and what they started in turn, die with it
 * when the daemon is killed with -9 (src/node/orphans.ts).
 */
const sh = (script: string) => JSON.stringify({ Path: '/bin/sh', Args: ['-c', script] });

/** Pids of every live process in group pgid (from /proc). */
function group(pgid: number): number[] {
  const out: number[] = [];
  for (const name of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${name}/stat`, 'utf8');
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (Number(f[2]) === pgid && f[0] !== 'Z') out.push(Number(name));
    } catch {
      // gone meanwhile
    }
  }
  return out;
}

t.test('orphans: kill -9 of the daemon ends its processes and their children', async (t) => {
  const d = await startServer();
  const pids: number[] = [];
  t.teardown(() => {
    for (const p of pids) {
      try {
        process.kill(p, 'SIGKILL');
      } catch {
        // gone, as it should be
      }
    }
  });
  const mk = async (name: string, script: string) => {
    const p = `/${d.id}/${name}`;
    const r = await cli(d.url, ['mkproc', p], sh(script));
    t.equal(r.code, 0, `mkproc ${name}: ${r.stderr}`);
    const st = JSON.parse((await cli(d.url, ['peek', p])).stdout) as { Pid: number };
    return st.Pid;
  };
  // a shell waiting for two children; a shell that exits at once, leaving a child behind
  const waiting = await mk('waiting', 'sleep 100 & sleep 101; wait');
  const left = await mk('left', 'sleep 102 & exit 0');
  const kids = (await eventually(() => {
    const a = group(waiting);
    const b = group(left);
    return a.length >= 3 && b.length >= 1 ? [...a, ...b] : undefined;
  }, 5000)) as number[];
  pids.push(...kids);
  t.ok(kids.length >= 4, `${kids.length} processes running in the two groups`);

  await d.stop('SIGKILL');
  await eventually(() => kids.every((p) => !alive(p)), 5000).catch(() => {});
  const still = kids.filter((p) => alive(p));
  t.same(still, [], 'no process of either group outlives the daemon');
});

t.test('orphans: a graceful stop still ends processes (the watchdog finds nothing left)', async (t) => {
  const d = await startServer();
  const p = `/${d.id}/p`;
  t.equal((await cli(d.url, ['mkproc', p], sh('sleep 100 & sleep 101; wait'))).code, 0);
  const st = JSON.parse((await cli(d.url, ['peek', p])).stdout) as { Pid: number };
  const kids = (await eventually(() => (group(st.Pid).length >= 3 ? group(st.Pid) : undefined), 5000)) as number[];
  await d.stop('SIGTERM');
  await eventually(() => kids.every((k) => !alive(k)), 8000).catch(() => {});
  t.same(kids.filter((k) => alive(k)), [], 'all gone after SIGTERM');
});

t.test('orphans: a container whose server was killed with -9 is removed at the next start', async (t) => {
  const { ensureImage, containerListed } = await import('../helpers/docker');
  const image = await ensureImage();
  const d = await startServer(['--no-mount', '--docker']);
  let cid = '';
  t.teardown(async () => {
    if (cid && (await containerListed(cid).catch(() => false))) {
      const { execFileSync } = await import('node:child_process');
      execFileSync('docker', ['rm', '-f', cid]);
    }
  });
  const box = `/${d.id}/box`;
  const r = await cli(d.url, ['mkdkr', box], JSON.stringify({ Image: image, Path: 'sleep', Args: ['100'] }));
  t.equal(r.code, 0, r.stderr);
  cid = (JSON.parse((await cli(d.url, ['peek', box])).stdout) as { Id?: string; ID?: string }).Id ?? '';
  t.ok(cid, 'the container has an id');
  await d.stop('SIGKILL');
  t.ok(await containerListed(cid), 'the container outlives its kill -9\'d server (the engine keeps it)');
  const next = await startServer(['--no-mount', '--docker']);
  t.teardown(() => next.stop());
  await eventually(() => /Removed \d+ container\(s\) left by servers that died/.test(next.stderr()), 10_000);
  t.notOk(await containerListed(cid), 'the next start removed it');
});
