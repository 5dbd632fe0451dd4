/** Runs the membership benchmark and prints a markdown table: node dist/bench/membership-main.js [--quick] */
import { benchMembership } from './membership';

async function main(): Promise<void> {
  const rows = await benchMembership({ quick: process.argv.includes('--quick') });
  console.log('| measure | value | unit | note |');
  console.log('|---|---:|---|---|');
  for (const r of rows) console.log(`| ${r.measure} | ${r.value} | ${r.unit} | ${r.note ?? ''} |`);
}

if (require.main === module) {
  main().catch((err) => {
    console.error(err);
    process.exit(1);
  });
}
