import { benchDns } from './dns';

/** Prints the DNS element's load measurement: `node dist/bench/dns-main.js [--quick]`. */
async function main(): Promise<void> {
  const quick = process.argv.includes('--quick');
  for (const m of await benchDns({ quick })) {
    console.log(`${m.measure}: ${m.value} ${m.unit}${m.note ? ` (${m.note})` : ''}`);
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
