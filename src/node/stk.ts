import { monitorEventLoopDelay, performance } from 'node:perf_hooks';

/**
 * The daemon's report, Node's counterpart of the original's goroutine dump (`circuit stk`,
 * `server/stk`): the main thread's JavaScript stack at the time of the call, the pending async
 * operations by kind, the open libuv handles, event-loop delay sampled over a short window, and
 * the heap. Nothing runs between reports: the delay monitor is on only while one is made.
 */
export const SAMPLE_MS = 100;

interface UvHandle {
  type: string;
  is_active?: boolean;
  is_referenced?: boolean;
  localEndpoint?: { host?: string; ip4?: string; ip6?: string; port?: number } | null;
  remoteEndpoint?: { host?: string; ip4?: string; ip6?: string; port?: number } | null;
  filename?: string;
}

interface Report {
  javascriptStack?: { message?: string; stack?: string[] };
  libuv?: UvHandle[];
}

export async function stackReport(who: { id: string; started: Date }): Promise<string> {
  // The stack first, before the sampling below moves the caller on.
  const report = process.report.getReport() as unknown as Report;
  const h = monitorEventLoopDelay({ resolution: 10 });
  h.enable();
  await new Promise((r) => setTimeout(r, SAMPLE_MS));
  h.disable();
  const out: string[] = [];
  const up = Math.round((Date.now() - who.started.getTime()) / 1000);
  out.push(`server ${who.id}  pid ${process.pid}  node ${process.version}  up ${up} s`);

  out.push('', '== main stack');
  for (const l of report.javascriptStack?.stack ?? []) out.push(`  ${l}`);

  out.push('', '== pending async operations by kind');
  const counts = new Map<string, number>();
  for (const r of process.getActiveResourcesInfo()) counts.set(r, (counts.get(r) ?? 0) + 1);
  for (const [k, n] of [...counts].sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1))) out.push(`  ${String(n).padStart(5)} ${k}`);

  out.push('', '== open handles');
  for (const u of report.libuv ?? []) {
    if (!u.is_active) continue;
    const ep = (e: UvHandle['localEndpoint']) => (e ? `${e.host ?? e.ip4 ?? e.ip6 ?? '?'}:${e.port ?? '?'}` : '');
    const where = [ep(u.localEndpoint), u.remoteEndpoint ? `-> ${ep(u.remoteEndpoint)}` : '', u.filename ?? ''].filter(Boolean).join(' ');
    out.push(`  ${u.type.padEnd(8)} ${u.is_referenced ? 'ref  ' : 'unref'}${where ? ' ' + where : ''}`);
  }

  const ms = (ns: number) => (ns / 1e6).toFixed(2);
  out.push('', `== event loop delay (ms, sampled over ${SAMPLE_MS} ms)`);
  out.push(`  min ${ms(h.min)}  mean ${ms(h.mean)}  p50 ${ms(h.percentile(50))}  p99 ${ms(h.percentile(99))}  max ${ms(h.max)}`);
  const elu = performance.eventLoopUtilization();
  out.push(`  utilization since start ${(elu.utilization * 100).toFixed(2)}%`);

  const mem = process.memoryUsage();
  const mb = (n: number) => `${(n / (1 << 20)).toFixed(1)} MiB`;
  out.push('', '== heap');
  out.push(`  rss ${mb(mem.rss)}  heap total ${mb(mem.heapTotal)}  heap used ${mb(mem.heapUsed)}  external ${mb(mem.external)}  array buffers ${mb(mem.arrayBuffers)}`);
  out.push('•••');
  return out.join('\n') + '\n';
}
