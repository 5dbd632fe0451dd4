import t from 'tap';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { isoNow, OpLog, type OpRecord } from '../../src/node/oplog';

/** ops.log: one JSON line per operation, secrets left out, whatever the names hold. */
t.test('oplog: each record is one JSON line with its fields, in order of appending', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'circuit-oplog-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const log = new OpLog(path.join(dir, 'ops.log'), () => {});
  const recs: OpRecord[] = [
    { op: 'send', path: '/X1/a', origin: { via: 'tcp', peer: '127.0.0.1:5' }, args: { bytes: 3 }, ok: true },
    { op: 'mkproc', path: '/X1/"q\nfake line', origin: { via: 'socket', uid: 0, pid: 7 }, args: { Env: ['A=secret', 'B=x'], Path: '/bin/sh', Args: ['-c', 'x'] }, ok: false, error: { code: 'EINVAL', message: 'bad\u2028' } },
    { op: 'recv', ok: true, result: { bytes: 9 } },
    { op: 'x', ok: true, args: { env: ['C=hidden'], n: null, nested: { env: ['D=deep'] } } },
  ];
  const before = Date.now();
  for (const r of recs) log.append(r);
  const lines = log.read().toString().split('\n');
  log.close();
  t.equal(lines.pop(), '', 'ends with a newline');
  t.equal(lines.length, recs.length, 'one line each: a newline in a name does not split one');
  const parsed = lines.map((l) => JSON.parse(l) as Record<string, unknown>);
  t.same(parsed.map((p) => p.seq), [1, 2, 3, 4], 'numbered in order');
  for (const p of parsed) {
    t.match(p.time, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/, 'ISO time');
    t.ok(Date.parse(p.time as string) >= before - 1 && Date.parse(p.time as string) <= Date.now(), 'the time of appending');
  }
  const strip = ({ seq: _s, time: _t, ...rest }: Record<string, unknown>) => rest;
  t.same(strip(parsed[0]!), recs[0], 'fields as given');
  t.same(strip(parsed[1]!), { ...recs[1], args: { Env: ['A=…', 'B=…'], Path: '/bin/sh', Args: ['-c', 'x'] } }, 'Env values are not logged; the name is kept as it is');
  t.same(strip(parsed[2]!), recs[2], 'no path, a result');
  t.same(strip(parsed[3]!), { op: 'x', ok: true, args: { env: ['C=…'], n: null, nested: { env: ['D=…'] } } }, 'env lists are redacted at any depth');
  t.notOk(lines.join('\n').includes('secret') || lines.join('\n').includes('hidden') || lines.join('\n').includes('deep'), 'no value reaches the file');
});

t.test('oplog: the time is written as toISOString() writes it, across seconds and milliseconds', async (t) => {
  const base = Date.UTC(2026, 11, 1, 23, 59, 58);
  const times = [0, 1, 9, 10, 99, 100, 999, 1000, 1005, 1999, 2000, 2001].map((d) => base + d);
  times.push(Date.UTC(2027, 0, 1), Date.UTC(2027, 0, 1) + 7, 0, 999);
  for (const at of times) t.equal(isoNow(at), new Date(at).toISOString(), `at ${at}`);
  t.equal(isoNow(base + 5), new Date(base + 5).toISOString(), 'an earlier second again');
});
