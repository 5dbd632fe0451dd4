import t from 'tap';
import { ManualClock } from '../../src/kit/clock';
import { Suspicion, suspicionMin, suspicionRemaining } from '../../src/cluster/suspicion';
import { Awareness } from '../../src/cluster/awareness';

t.test('suspicion: remaining time shrinks on a log scale with confirmations', async (t) => {
  // [n confirmations, k expected, elapsed, min, max, expected remaining]
  const table: Array<[number, number, number, number, number, number]> = [
    [0, 3, 0, 2000, 30000, 30000],
    [1, 3, 0, 2000, 30000, 16000],
    [2, 3, 0, 2000, 30000, 7810],
    [3, 3, 0, 2000, 30000, 2000],
    [4, 3, 0, 2000, 30000, 2000],
    [0, 3, 25000, 2000, 30000, 5000],
    [1, 3, 25000, 2000, 30000, -9000],
    [0, 0, 0, 600, 2400, 600],
    [0, 1, 0, 600, 2400, 2400],
    [1, 1, 0, 600, 2400, 600],
    [1, 1, 1000, 600, 2400, -400],
  ];
  for (const [n, k, elapsed, min, max, want] of table) {
    t.equal(suspicionRemaining(n, k, elapsed, min, max), want, `n=${n} k=${k} elapsed=${elapsed}`);
  }
});

t.test('suspicion: the floor grows with log10 of the cluster size', async (t) => {
  t.equal(suspicionMin(3, 1, 200), 600);
  t.equal(suspicionMin(3, 10, 200), 600);
  t.equal(suspicionMin(3, 100, 200), 1200);
  t.equal(suspicionMin(3, 1000, 200), 1800);
  t.equal(suspicionMin(4, 0, 1000), 4000, 'an empty cluster counts as one');
});

t.test('suspicion: the timer fires at max without confirmations', async (t) => {
  const clock = new ManualClock();
  let fired = -1;
  new Suspicion('a', 2, 1000, 4000, clock, () => (fired = clock.now()));
  clock.advance(3999);
  t.equal(fired, -1);
  clock.advance(1);
  t.equal(fired, 4000);
});

t.test('suspicion: independent confirmations bring the timeout forward, repeats do not', async (t) => {
  const clock = new ManualClock();
  let fired = -1;
  const s = new Suspicion('a', 2, 1000, 4000, clock, () => (fired = clock.now()));
  clock.advance(500);
  t.notOk(s.confirm('a'), 'the first suspecter does not confirm itself');
  t.ok(s.confirm('b'));
  t.notOk(s.confirm('b'), 'a repeat does not count');
  t.equal(s.confirmations, 1);
  t.ok(s.confirm('c'));
  t.notOk(s.confirm('d'), 'more than k confirmations are ignored');
  // after k confirmations the timer is at its floor: 1000 ms after the start
  clock.advance(499);
  t.equal(fired, -1);
  clock.advance(1);
  t.equal(fired, 1000);
});

t.test('suspicion: a confirmation after the floor has passed fires at once', async (t) => {
  const clock = new ManualClock();
  let fired = -1;
  const s = new Suspicion('a', 1, 1000, 4000, clock, () => (fired = clock.now()));
  clock.advance(2000);
  s.confirm('b');
  clock.advance(0);
  t.equal(fired, 2000);
});

t.test('suspicion: with k < 1 the timer is the floor; stop() cancels it', async (t) => {
  const clock = new ManualClock();
  let fired = 0;
  new Suspicion('a', 0, 700, 2800, clock, () => fired++);
  clock.advance(700);
  t.equal(fired, 1);
  const s = new Suspicion('a', 0, 700, 2800, clock, () => fired++);
  s.stop();
  clock.advance(5000);
  t.equal(fired, 1);
  t.equal(clock.pending(), 0);
});

t.test('awareness: scales timeouts and stays within its bounds', async (t) => {
  const a = new Awareness(8);
  t.equal(a.scale(100), 100);
  a.apply(2);
  t.equal(a.scale(100), 300);
  a.apply(100);
  t.equal(a.score, 7);
  a.apply(-100);
  t.equal(a.score, 0);
});
