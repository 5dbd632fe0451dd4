import t from 'tap';
import { FrameDecoder, encodeFrame } from '../../src/cluster/frame';

const bodies = [Buffer.from('a'), Buffer.alloc(0), Buffer.from('hello world'), Buffer.alloc(70000, 7)];
const stream = Buffer.concat(bodies.map(encodeFrame));

t.test('frame: byte by byte yields every body, in order', async (t) => {
  const d = new FrameDecoder(1 << 20);
  const out: Buffer[] = [];
  for (let i = 0; i < stream.length; i++) out.push(...d.push(stream.subarray(i, i + 1)));
  t.same(out.map((b) => b.toString('hex')), bodies.map((b) => b.toString('hex')));
  t.equal(d.pending, 0);
});

t.test('frame: merged chunks and every split point', async (t) => {
  for (const split of [1, 2, 3, 4, 5, 13, 100, 70003, stream.length - 1]) {
    const d = new FrameDecoder(1 << 20);
    const out = [...d.push(stream.subarray(0, split)), ...d.push(stream.subarray(split))];
    t.equal(out.length, bodies.length, `split at ${split}`);
    t.ok(out.every((b, i) => b.equals(bodies[i])), `split at ${split}`);
  }
  const d = new FrameDecoder(1 << 20);
  t.equal(d.push(Buffer.concat([stream, stream])).length, bodies.length * 2, 'two streams in one chunk');
});

t.test('frame: a body held across chunks is not changed by later input', async (t) => {
  const d = new FrameDecoder(100);
  const f = encodeFrame(Buffer.from('abcdef'));
  const first = d.push(f);
  t.equal(first[0].toString(), 'abcdef');
  d.push(encodeFrame(Buffer.from('zzzzzz')));
  t.equal(first[0].toString(), 'abcdef');
});

t.test('frame: a declared length above the maximum fails before allocation, and stays failed', async (t) => {
  const d = new FrameDecoder(1024);
  const head = Buffer.alloc(4);
  head.writeUInt32BE(0xffffffff);
  t.throws(() => d.push(head), { code: 'EMSGSIZE' });
  t.throws(() => d.push(encodeFrame(Buffer.from('x'))), { code: 'EMSGSIZE' });
  const ok = new FrameDecoder(1024);
  t.equal(ok.push(encodeFrame(Buffer.alloc(1024))).length, 1, 'exactly the maximum is fine');
  t.throws(() => new FrameDecoder(1024).push(encodeFrame(Buffer.alloc(1025))), { code: 'EMSGSIZE' });
});
