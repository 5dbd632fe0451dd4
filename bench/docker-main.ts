import { benchDocker } from './docker';

/** Prints the docker element's measurement: `node dist/bench/docker-main.js [--quick]`. */
async function main(): Promise<void> {
  const quick = process.argv.includes('--quick');
  for (const m of await benchDocker({ quick })) {
    const value = Number.isNaN(m.value) ? (m as { notMeasured?: string }).notMeasured : `${m.value} ${m.unit}`;
    const base = m.baseline === undefined ? '' : `, baseline ${m.baseline} ${m.unit}, ratio ${m.ratio}`;
    console.log(`${m.measure}: ${value}${base}${m.note ? ` (${m.note})` : ''}`);
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
