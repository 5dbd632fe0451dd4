import { benchFoundation } from './foundation';

/** Prints issue 2's figures as a markdown table: `node dist/bench/foundation-main.js [--quick]`. */
async function main(): Promise<void> {
  const quick = process.argv.includes('--quick');
  const rows = await benchFoundation({ quick });
  console.log('| measure | value | unit | note |');
  console.log('|---|---:|---|---|');
  for (const m of rows) console.log(`| ${m.measure} | ${m.value} | ${m.unit} | ${m.note ?? ''} |`);
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
