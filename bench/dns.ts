import * as dgram from 'node:dgram';
import { DnsElement } from '../src/node/kinds/dns';
import { systemClock } from '../src/kit/clock';

/**
 * A tiny load measurement of the DNS element: one element on loopback, one UDP client socket
 * keeping a fixed number of A queries in flight, a bounded number of queries in all. The answer
 * is dominated by dns2's bit-by-bit packet codec, not by the sockets.
 */

export interface Measure {
  measure: string;
  value: number;
  unit: string;
  note?: string;
}

/** A query for `name` type A, class IN, with the given id (RFC 1035 §4.1). */
function query(id: number, name: string): Buffer {
  const labels = name.split('.').filter(Boolean).map((l) => Buffer.concat([Buffer.from([l.length]), Buffer.from(l)]));
  const head = Buffer.alloc(12);
  head.writeUInt16BE(id, 0);
  head.writeUInt16BE(0x0100, 2); // RD
  head.writeUInt16BE(1, 4);
  return Buffer.concat([head, ...labels, Buffer.from([0, 0, 1, 0, 1])]);
}

/** Sends `total` queries keeping `window` in flight; resolves with queries/second and losses. */
async function load(port: number, total: number, window: number, name: string): Promise<{ qps: number; lost: number }> {
  const sock = dgram.createSocket('udp4');
  await new Promise<void>((r) => sock.bind(0, '127.0.0.1', r));
  let sent = 0;
  let answered = 0;
  let lost = 0;
  const send = () => {
    sock.send(query(sent++ & 0xffff, name), port, '127.0.0.1');
  };
  const started = process.hrtime.bigint();
  await new Promise<void>((resolve) => {
    let idle: NodeJS.Timeout | undefined;
    const arm = () => {
      clearTimeout(idle);
      // Nothing for 500 ms: count what is in flight as lost and refill the window.
      idle = setTimeout(() => {
        lost += sent - answered - lost;
        for (let i = 0; i < window && sent < total; i++) send();
        if (sent - answered - lost <= 0) resolve();
        else arm();
      }, 500);
    };
    sock.on('message', () => {
      answered++;
      if (sent < total) send();
      if (answered + lost >= total) {
        clearTimeout(idle);
        resolve();
      } else arm();
    });
    for (let i = 0; i < window && sent < total; i++) send();
    arm();
  });
  const secs = Number(process.hrtime.bigint() - started) / 1e9;
  sock.close();
  return { qps: Math.round(answered / secs), lost };
}

/** Queries per second from one element over loopback UDP. */
export async function benchDns(opts: { quick: boolean }): Promise<Measure[]> {
  const ctx = { path: '/Xbench/dns', clock: systemClock, log: () => undefined, detach: () => undefined };
  const el = await DnsElement.make({ addr: '127.0.0.1:0' }, ctx);
  try {
    await el.set(['bench.example. A 10.0.0.1', 'bench.example. A 10.0.0.2', 'alias.example. CNAME bench.example.'].join('\n'), false);
    const port = Number(/:(\d+)$/.exec(el.peek().Address)![1]);
    const total = opts.quick ? 2_000 : 20_000;
    await load(port, Math.min(total, 500), 16, 'bench.example'); // warm-up
    const out: Measure[] = [];
    for (const [what, window, name] of [
      ['A answer, 1 in flight', 1, 'bench.example'],
      ['A answer, 32 in flight', 32, 'bench.example'],
      ['NXDOMAIN, 32 in flight', 32, 'missing.example'],
      ['CNAME followed, 32 in flight', 32, 'alias.example'],
    ] as const) {
      const r = await load(port, total, window, name);
      out.push({
        measure: `dns udp queries/s (${what})`,
        value: r.qps,
        unit: 'queries/s',
        note: `${total} queries over loopback${r.lost ? `, ${r.lost} lost` : ''}`,
      });
    }
    return out;
  } finally {
    await el.scrub();
  }
}
