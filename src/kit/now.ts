/**
 * Values that are there at once or come later. A call that can often answer without waiting (an
 * in-process server's peek, a rendered answer) returns the value itself, or a promise when it must
 * wait; callers that care go on in the same call, and the rest await it as usual. Errors of the
 * synchronous form are thrown, where the promise would reject.
 */
export type Now<T> = T | Promise<T>;

/** Whether v must be waited for: a promise (any thenable; the values here are plain data). */
export function isPromise<T>(v: Now<T>): v is Promise<T> {
  return typeof (v as { then?: unknown } | null)?.then === 'function';
}

/** fn of v: at once when v is a value, once it resolves when it is a promise. */
export function then<T, R>(v: Now<T>, fn: (v: T) => Now<R>): Now<R> {
  return isPromise(v) ? v.then(fn) : fn(v);
}
