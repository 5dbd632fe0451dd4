import t from 'tap';
import { LazyAbort, isAborted, lazyOptions, whenAborted } from '../../src/kit/abort';

/** src/kit/abort.ts: an abort that makes its AbortSignal only when asked, and the helpers that spare it. */
t.test('LazyAbort: listeners, reason, and a signal made before or after the abort', async (t) => {
  const a = new LazyAbort();
  const seen: string[] = [];
  a.onAbort(() => seen.push('one'));
  const off = a.onAbort(() => seen.push('taken off'));
  a.onAbort(() => seen.push('two'));
  off();
  const early = a.signal;
  t.equal(early.aborted, false);
  t.equal(a.aborted, false);
  const why = new Error('why');
  a.abort(why);
  a.abort(new Error('again'));
  t.same(seen, ['one', 'two'], 'each listener once, in order; one taken off is not called');
  t.equal(a.reason, why, 'the first reason stays');
  t.equal(early.aborted, true, 'a signal made before is aborted with it');
  t.equal(early.reason, why);
  let late = false;
  a.onAbort(() => (late = true));
  t.equal(late, true, 'a listener added after the abort is called at once');

  const b = new LazyAbort();
  b.abort(why);
  t.equal(b.signal.aborted, true, 'a signal made after the abort has aborted');
  t.equal(b.signal.reason, why);
});

t.test('isAborted and whenAborted: lazy options, real signals, no signal', async (t) => {
  const a = new LazyAbort();
  const opts = lazyOptions(a, { via: 'api' });
  t.equal(isAborted(opts), false);
  let n = 0;
  const off = whenAborted(opts, () => n++);
  t.type(off, 'function');
  a.abort();
  t.equal(isAborted(opts), true);
  t.equal(n, 1);
  t.same(opts.origin, { via: 'api' }, 'the origin is kept');
  t.equal(opts.signal.aborted, true);

  const ac = new AbortController();
  const real = { signal: ac.signal };
  let m = 0;
  const stop = whenAborted(real, () => m++)!;
  stop();
  whenAborted(real, () => m++);
  ac.abort();
  t.equal(m, 1, 'a real signal: the listener taken off is not called, the other once');
  t.equal(isAborted(real), true);
  t.equal(isAborted(undefined), false);
  t.equal(whenAborted({}, () => {}), undefined, 'no signal: nothing can abort the call');
  const spread = { ...lazyOptions(new LazyAbort(), undefined) };
  t.equal('signal' in spread, false, 'a spread drops the signal (documented: pass the options on as they are)');
});
