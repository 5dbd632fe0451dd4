import t from 'tap';
import {
  decodePacket, decodeRecord, encodePacket, encodeRecord, idHashes, MsgType, RecordKind, splitIntoPackets, type StateRecord,
} from '../../src/cluster/membership-wire';

const alive: StateRecord = { kind: RecordKind.Alive, id: 'X0123456789abcdef', inc: 7, url: 'circuit://10.0.0.1:11022/42/Q0123456789abcdef', addr: '10.0.0.1:7946' };

t.test('membership wire: records round-trip; malformed ones decode to undefined', async (t) => {
  const records: StateRecord[] = [
    alive,
    { kind: RecordKind.Suspect, id: 'X1', inc: 1, from: 'X2' },
    { kind: RecordKind.Dead, id: 'X1', inc: 2, from: 'X3' },
    { kind: RecordKind.Left, id: 'X1', inc: 3 },
  ];
  const buf = encodePacket([MsgType.Gossip, 'X9'], records.map(encodeRecord));
  const d = decodePacket(buf);
  t.same(d.header, [MsgType.Gossip, 'X9']);
  t.same(d.records.map(decodeRecord), records);
  for (const bad of [null, 5, [], [0, 'X1'], [0, 'X1', 1, 'url'], [1, 'X1', 1], [9, 'X1', 1], ['0', 'X1', 1]]) {
    t.equal(decodeRecord(bad), undefined, JSON.stringify(bad));
  }
  t.throws(() => decodePacket(Buffer.from([0xc1])));
  t.throws(() => decodePacket(encodePacket(['not a type' as unknown as number])), /bad packet header/);
});

t.test('membership wire: state splits into packets within the size budget', async (t) => {
  const recs: Buffer[] = [];
  for (let i = 0; i < 1000; i++) recs.push(encodeRecord({ ...alive, id: 'X' + i.toString(16).padStart(16, '0') }));
  const parts = splitIntoPackets(recs, 1400, (i, n) => [MsgType.SyncPart, 12345, i, n, 0]);
  t.ok(parts.length > 1);
  let seen = 0;
  parts.forEach((p, i) => {
    t.ok(p.length <= 1400, `part ${i} is ${p.length} bytes`);
    const d = decodePacket(p);
    t.same(d.header, [MsgType.SyncPart, 12345, i, parts.length, 0]);
    seen += d.records.length;
  });
  t.equal(seen, 1000, 'every record is in exactly one part');
  t.same(splitIntoPackets([], 1400, (i, n) => [MsgType.SyncPart, 1, i, n, 0]).map((p) => decodePacket(p).header), [[MsgType.SyncPart, 1, 0, 1, 0]], 'an empty state is one empty part');
});

t.test('membership wire: id digests are order-independent and toggle', async (t) => {
  const ids = ['X0000000000000001', 'X0000000000000002', 'X00000000000000ff'];
  const xor = (list: string[]) => list.reduce((acc, id) => {
    const [a, b] = idHashes(id);
    return [(acc[0]! ^ a) >>> 0, (acc[1]! ^ b) >>> 0];
  }, [0, 0]);
  t.same(xor(ids), xor([...ids].reverse()));
  t.same(xor([...ids, ids[1]!]), xor([ids[0]!, ids[2]!]), 'adding twice removes');
  t.notSame(idHashes(ids[0]!), idHashes(ids[1]!));
});
