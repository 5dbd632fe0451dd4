/** The book of messages handed out over connections (src/node/takes.ts), without a network. */
import t from 'tap';
import { Takes } from '../../src/node/takes';
import type { Received } from '../../src/api/types';

/** A message whose home acknowledges when told to (release) and counts what happened. */
function take(msg: string) {
  let release!: () => void;
  let fail!: (e: Error) => void;
  const home = { acks: 0, givenBack: 0 };
  const r: Received = {
    msg: Buffer.from(msg),
    ack: () => {
      home.acks++;
      return new Promise<void>((res, rej) => ((release = res), (fail = rej)));
    },
    giveBack: async () => void home.givenBack++,
  };
  return { r, home, release: () => release(), fail: (e: Error) => fail(e) };
}

const tick = () => new Promise((r) => setImmediate(r));

function book() {
  const back: string[] = [];
  const lines: string[] = [];
  const takes = new Takes(async (_path, msg) => void back.push(msg.toString()), (l) => lines.push(l));
  return { takes, back, lines };
}

t.test('acknowledged once; asking again by id says so; ids are not small counters', async (t) => {
  const { takes } = book();
  const m = take('a');
  const id = takes.add(m.r, '/X/c');
  t.ok(id > 1, 'ids start at a random point');
  const first = takes.ack(id, new AbortController().signal);
  const again = takes.ack(id, new AbortController().signal); // the receiver asks on another connection meanwhile
  m.release();
  await Promise.all([first, again]);
  t.equal(m.home.acks, 1, 'the home was asked once');
  await takes.ack(id, new AbortController().signal);
  t.equal(takes.open, 0, 'settled');
  await t.rejects(takes.ack(id + 1, new AbortController().signal), { code: 'ENOENT' }, 'an unknown id is refused');
});

t.test('given back before its acknowledgement came: asking later says ENOENT, the receiver writes nothing', async (t) => {
  const { takes } = book();
  const m = take('a');
  const id = takes.add(m.r, '/X/c');
  takes.giveBack(id);
  t.equal(m.home.givenBack, 1);
  await t.rejects(takes.ack(id, new AbortController().signal), { code: 'ENOENT', message: /went back to its channel/ });
  t.equal(m.home.acks, 0);
});

t.test('a receiver that left before it was told: back in its channel, unless it asked again elsewhere', async (t) => {
  const { takes, back, lines } = book();
  // left, nobody asked again: the message goes back
  const m = take('left');
  const id = takes.add(m.r, '/X/c');
  const gone = new AbortController();
  const p = takes.ack(id, gone.signal);
  takes.giveBack(id); // its connection's end: an acknowledgement on its way decides instead
  gone.abort();
  m.release();
  await t.rejects(p, { code: 'EINTR' });
  t.same(back, ['left'], 'put back');
  t.equal(m.home.givenBack, 0, 'not given back twice');
  await t.rejects(takes.ack(id, new AbortController().signal), { code: 'ENOENT' }, 'and a late question hears that');
  t.match(lines.join('\n'), /left before its acknowledgement was confirmed/);

  // left, but asked again on a new connection: that one is told, nothing goes back
  const n = take('asked');
  const id2 = takes.add(n.r, '/X/c');
  const old = new AbortController();
  const p1 = takes.ack(id2, old.signal);
  old.abort();
  const p2 = takes.ack(id2, new AbortController().signal);
  n.release();
  await t.rejects(p1, { code: 'EINTR' });
  await p2;
  t.same(back, ['left'], 'nothing more put back');
});

t.test('a home that never confirms: the take is dropped and the loss is said', async (t) => {
  const { takes, lines } = book();
  const m = take('a');
  const id = takes.add(m.r, '/X/c');
  const p = takes.ack(id, new AbortController().signal);
  await tick();
  m.fail(new Error('unreachable'));
  await t.rejects(p, { message: 'unreachable' });
  t.equal(takes.open, 0, 'nothing kept open');
  t.match(lines.join('\n'), /not confirmed by its home \(unreachable\)/);
  await t.rejects(takes.ack(id, new AbortController().signal), { code: 'ENOENT', message: /could not be confirmed/ }, 'a receiver asking again is told not to write it');
});

t.test('a one-way acknowledgement forgets it; giving back after that does nothing', async (t) => {
  const { takes, lines } = book();
  const m = take('a');
  const id = takes.add(m.r, '/X/c');
  takes.forget(id);
  takes.giveBack(id);
  m.release();
  await tick();
  t.equal(m.home.givenBack, 0);
  t.equal(takes.open, 0);
  await takes.ack(id, new AbortController().signal); // asked again: acknowledged

  const n = take('b');
  const id2 = takes.add(n.r, '/X/c');
  takes.forget(id2);
  n.fail(new Error('gone'));
  await tick();
  t.equal(takes.open, 0, 'a one-way acknowledgement its home never confirmed is not kept open');
  t.match(lines.join(''), /not confirmed by its home \(gone\)/);
});
