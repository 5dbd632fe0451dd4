/**
 * `npm run chaos [-- --long | --seconds N | --seed N]`: runs the chaos suite (chaos.ts) and prints
 * its table; exits 1 if a message was lost or duplicated, the stream differs, a call hung or a
 * process was not waited for.
 */
import { runChaos, table } from './chaos';

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  const arg = (name: string) => {
    const i = argv.indexOf(name);
    return i >= 0 ? argv[i + 1] : undefined;
  };
  const seconds = Number(arg('--seconds') ?? (argv.includes('--long') ? 600 : 60));
  const seed = Number(arg('--seed') ?? Date.now() % 100_000);
  const r = await runChaos({ durationMs: seconds * 1000, seed, log: (l) => console.log(l) });
  console.log(`seed ${seed}; faults: ${r.faults.join(', ') || 'none'}`);
  console.log(table(r));
  for (const h of r.hungCalls) console.log(`hung: ${h}`);
  for (const m of r.lostMessages) console.log(`lost: ${m}`);
  if (r.keptLog) console.log(`chaos: the run's events and each daemon's ops.log are kept in ${r.keptLog}`);
  const ok = r.lost === 0 && r.duplicated === 0 && r.hung === 0 && r.streamEqual && r.procsFinished === r.procsStarted && r.daemonsAlive === r.daemons;
  console.log(ok ? 'chaos: all invariants held' : 'chaos: INVARIANTS BROKEN (see the table)');
  process.exit(ok ? 0 : 1);
}

void main().catch((e) => {
  console.error(e);
  process.exit(2);
});
