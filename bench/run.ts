/**
 * `npm run bench [-- --quick] [--only NAME[,NAME…]] [--out FILE]`: runs every benchmark of issue 7 that is
 * there (each bench/NAME.ts exporting `benchX({ quick })`), one after the other, and prints one
 * markdown table of measures, same-run baselines, ratios and targets; the table also goes to
 * bench/results/latest.md (or --out FILE). A benchmark that throws becomes a row with its error; the run goes on.
 * Progress goes to stderr, the table to stdout.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { round, type Bench, type Measure } from './util';

interface Entry {
  name: string;
  /** Module (dist/bench/FILE.js) and export. */
  file: string;
  fn: string;
  /** Prefix for the rows of benchmarks written before the table's numbering. */
  prefix?: string;
  /** Turns the rows into the table's rows (targets, derived rows). */
  post?: (rows: Measure[], quick: boolean) => Measure[];
  /** Runs only when named with --only (too long for the full run). */
  optIn?: boolean;
}

/** In table order; benchmarks whose module is missing are listed as such. */
export const BENCHES: Entry[] = [
  { name: 'fs', file: 'fs', fn: 'benchFs' },
  { name: 'chan', file: 'chan', fn: 'benchChan' },
  { name: 'proc', file: 'proc', fn: 'benchProc' },
  { name: 'cli', file: 'cli', fn: 'benchCli' },
  { name: 'membership', file: 'membership', fn: 'benchMembership', prefix: '#8 membership ', post: membershipFlatness },
  { name: 'membership-seeds', file: 'membership', fn: 'benchMembershipSeeds', prefix: '#8 membership ', optIn: true },
  { name: 'idle', file: 'idle', fn: 'benchIdle' },
  { name: 'rss', file: 'rss', fn: 'benchRss' },
  { name: 'dns', file: 'dns', fn: 'benchDns' },
  { name: 'crypto', file: 'crypto', fn: 'benchCrypto' },
  { name: 'security', file: 'security', fn: 'benchSecurity' },
  { name: 'docker', file: 'docker', fn: 'benchDocker' },
  { name: 'foundation', file: 'foundation', fn: 'benchFoundation' },
];

/** #8's target: bytes per member per second flat within ±20% from 100 to 1 000 members. */
export const FLATNESS = '#8 membership bytes/member/s, n=1000 vs n=100';

function membershipFlatness(rows: Measure[], quick: boolean): Measure[] {
  const bytes = (n: number) => rows.find((r) => r.measure.includes(`n=${n}:`) && r.measure.includes('bytes sent per member per second'));
  const b100 = bytes(100);
  const b1000 = bytes(1000);
  const flat: Measure = b100 && b1000
    ? {
        measure: FLATNESS,
        value: b1000.value,
        unit: b1000.unit,
        baseline: b100.value,
        ratio: round(b1000.value / b100.value, 3),
        target: 'within ±20%',
        met: Math.abs(b1000.value / b100.value - 1) <= 0.2,
        note: 'simulated network; baseline is the n=100 figure',
      }
    : { measure: FLATNESS, value: NaN, unit: '', notMeasured: quick ? 'not measured in --quick (no n=1000 run)' : 'not measured: the membership benchmark gave no n=100/n=1000 bytes rows', target: 'within ±20%' };
  return [...rows, flat];
}

function parseArgs(argv: string[]): { quick: boolean; only: string[] | null; out: string } {
  const quick = argv.includes('--quick');
  const o = argv.indexOf('--out');
  const out = o >= 0 ? argv[o + 1] ?? '' : path.resolve(__dirname, '../../bench/results/latest.md');
  if (!out) throw new Error('--out needs a file name');
  const i = argv.indexOf('--only');
  const only = i >= 0 ? (argv[i + 1] ?? '').split(',').filter(Boolean) : null;
  if (i >= 0 && !only?.length) throw new Error('--only needs a benchmark name: ' + BENCHES.map((b) => b.name).join(', '));
  for (const o of only ?? []) if (!BENCHES.some((b) => b.name === o)) throw new Error(`unknown benchmark ${o}; known: ${BENCHES.map((b) => b.name).join(', ')}`);
  return { quick, only, out };
}

function load(e: Entry): Bench | string {
  const file = path.join(__dirname, `${e.file}.js`);
  if (!fs.existsSync(file)) return `not measured: bench/${e.file}.ts has not landed`;
  // eslint-disable-next-line @typescript-eslint/no-var-requires
  const fn = (require(file) as Record<string, unknown>)[e.fn];
  return typeof fn === 'function' ? (fn as Bench) : `not measured: bench/${e.file}.ts exports no ${e.fn}`;
}

export async function runAll(quick: boolean, only: string[] | null, say: (l: string) => void): Promise<Measure[]> {
  const rows: Measure[] = [];
  for (const e of BENCHES) {
    if (only ? !only.includes(e.name) : e.optIn) continue;
    const fn = load(e);
    if (typeof fn === 'string') {
      rows.push({ measure: `${e.name}`, value: NaN, unit: '', notMeasured: fn });
      continue;
    }
    const t0 = Date.now();
    say(`bench ${e.name}${quick ? ' (quick)' : ''}…`);
    let got: Measure[];
    try {
      got = (await fn({ quick })).map((r) => (e.prefix ? { ...r, measure: e.prefix + r.measure } : r));
    } catch (err) {
      got = [{ measure: `${e.name}: error`, value: NaN, unit: '', notMeasured: `failed: ${String((err as Error)?.message ?? err).split('\n')[0]!.slice(0, 300)}` }];
    }
    if (e.post) got = e.post(got, quick);
    say(`bench ${e.name}: ${((Date.now() - t0) / 1000).toFixed(1)} s`);
    rows.push(...got);
  }
  return rows;
}

function fmt(x: number | undefined, unit?: string): string {
  if (x === undefined || Number.isNaN(x)) return '—';
  const s = Math.abs(x) >= 1000 ? Math.round(x).toLocaleString('en-US') : String(x);
  return unit ? `${s} ${unit}` : s;
}

function cell(s: string): string {
  return s.replace(/\|/g, '\\|').replace(/\n/g, ' ');
}

/** The one markdown table. */
export function table(rows: Measure[]): string {
  const lines = [
    '| measure | value | baseline (same run) | ratio | target | met? | note |',
    '|---|---|---|---|---|---|---|',
  ];
  for (const r of rows) {
    const met = r.notMeasured ? 'not measured' : r.met === undefined ? '—' : r.met ? 'yes' : '**NO: missed**';
    lines.push('| ' + [
      r.measure,
      r.notMeasured ?? fmt(r.value, r.unit),
      r.notMeasured ? '—' : fmt(r.baseline, r.baselineUnit ?? r.unit),
      r.ratio === undefined ? '—' : `${r.ratio}×`,
      r.target ?? '—',
      met,
      r.note ?? '',
    ].map(cell).join(' | ') + ' |');
  }
  return lines.join('\n') + '\n';
}

export function machine(): string {
  const cpus = os.cpus();
  return `${cpus.length} × ${cpus[0]?.model.trim() ?? 'cpu'}, ${Math.round(os.totalmem() / 2 ** 30)} GiB RAM, Linux ${os.release()}, node ${process.version}`;
}

async function main(): Promise<void> {
  const { quick, only, out: file } = parseArgs(process.argv.slice(2));
  const say = (l: string) => process.stderr.write(l + '\n');
  const t0 = Date.now();
  const rows = await runAll(quick, only, say);
  const secs = (Date.now() - t0) / 1000;
  const out = table(rows);
  process.stdout.write(out);
  const header =
    `# circuit benchmarks${quick ? ' (--quick: timings are not meant to be judged)' : ''}\n\n` +
    `${new Date().toISOString()} · ${machine()} · ${secs.toFixed(0)} s${only ? ` · only ${only.join(',')}` : ''}\n\n`;
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, header + out);
  say(`${rows.length} rows in ${secs.toFixed(0)} s; written to ${path.relative(process.cwd(), file) || file}`);
}

if (require.main === module) {
  main().then(
    () => process.exit(0),
    (e) => {
      process.stderr.write(`bench: ${(e as Error).message}\n`);
      process.exit(2);
    },
  );
}
