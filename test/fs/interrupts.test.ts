import t from 'tap';
import { CallerWatch, callerProgress, callerWrote, interrupted, interruptedNow } from '../../src/fs/interrupts';
import { spawn } from 'node:child_process';
import { writeSync } from 'node:fs';
import { eventually } from './helpers';

const status = (f: Partial<Record<'State' | 'SigPnd' | 'ShdPnd' | 'SigBlk' | 'SigIgn', string>>) =>
  [
    'Name:\tcat',
    `State:\t${f.State ?? 'D (disk sleep)'}`,
    `SigQ:\t0/63432`,
    `SigPnd:\t${f.SigPnd ?? '0000000000000000'}`,
    `ShdPnd:\t${f.ShdPnd ?? '0000000000000000'}`,
    `SigBlk:\t${f.SigBlk ?? '0000000000000000'}`,
    `SigIgn:\t${f.SigIgn ?? '0000000000000000'}`,
    `SigCgt:\t0000000000000000`,
  ].join('\n');

t.test('interrupts: which /proc/PID/status means "answer EINTR"', async (t) => {
  const table: Array<[string, string | null, boolean]> = [
    ['gone', null, true],
    ['nothing pending', status({}), false],
    ['dying: SIGKILL pending', status({ SigPnd: '0000000000000100' }), true],
    ['SIGINT pending, shared', status({ ShdPnd: '0000000000000002' }), true],
    ['SIGINT pending but blocked', status({ ShdPnd: '0000000000000002', SigBlk: '0000000000000002' }), false],
    ['SIGINT pending but ignored', status({ SigPnd: '0000000000000002', SigIgn: '0000000000000002' }), false],
    ['a real-time signal (bit 40) pending', status({ SigPnd: '0000010000000000' }), true],
    ['blocked one pending, another not', status({ SigPnd: '0000000000000006', SigBlk: '0000000000000002' }), true],
    ['zombie', status({ State: 'Z (zombie)' }), true],
  ];
  for (const [name, s, want] of table) t.equal(interrupted(s), want, name);
});

t.test('interrupts: the watch aborts an interrupted caller and only while watched', async (t) => {
  const st = new Map<number, string | null>([[1, status({})], [2, status({})]]);
  let reads = 0;
  const w = new CallerWatch({ intervalMs: 5, readStatus: async (pid) => (reads++, st.get(pid) ?? null) });
  t.teardown(() => w.close());
  const aborted: number[] = [];
  w.watch(1, () => aborted.push(1));
  const un2 = w.watch(2, () => aborted.push(2));
  await eventually(() => reads >= 4);
  t.same(aborted, [], 'nobody interrupted yet');
  st.set(1, status({ SigPnd: '0000000000000100' }));
  await eventually(() => aborted.length === 1);
  t.same(aborted, [1]);
  un2();
  st.set(2, null);
  const before = reads;
  await eventually(() => w.size === 0 && reads === before, 200).catch(() => {});
  t.equal(w.size, 0, 'nothing left to watch');
  await new Promise((r) => setTimeout(r, 30));
  t.equal(reads, before, 'no polling while nothing is watched');
  t.same(aborted, [1], 'an unwatched caller is never aborted');
});

t.test('interrupts: callerWrote follows a caller\'s writes, and a new task behind a reused pid', async (t) => {
  const before = callerWrote(process.pid);
  t.equal(before, callerProgress(process.pid)?.wrote, 'the same count as callerProgress');
  writeSync(2, '# callerWrote\n');
  t.ok(callerWrote(process.pid)! >= before! + 14, 'the open file is read afresh: the write is counted');
  const child = spawn('sleep', ['10']);
  await new Promise((r) => child.once('spawn', r));
  t.type(callerWrote(child.pid!), 'number', 'another caller');
  t.equal(interruptedNow(child.pid!), false, 'a caller with no signal pending is not interrupted');
  child.kill('SIGSTOP');
  child.kill('SIGTERM');
  await eventually(() => interruptedNow(child.pid!), 2000);
  t.pass('a caller sent SIGTERM while stopped is interrupted (its kept status file is read afresh)');
  child.kill('SIGKILL');
  await new Promise((r) => child.once('exit', r));
  t.equal(callerWrote(child.pid!), null, 'a task that is gone: null (its kept file fails, opening again fails)');
  t.equal(interruptedNow(child.pid!), true, 'and it counts as interrupted');
});
