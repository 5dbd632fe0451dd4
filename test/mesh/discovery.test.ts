import t from 'tap';
import { announceGap, fixHost, parseGroup } from '../../src/cluster/discovery';
import { hostPort, packetAddr } from '../../src/node/mesh';

t.test('discovery: group specs', async (t) => {
  t.same(parseGroup('239.1.2.3:7711'), { group: '239.1.2.3', port: 7711, iface: undefined });
  t.same(parseGroup(' 239.1.2.3:7711@10.0.0.5 '), { group: '239.1.2.3', port: 7711, iface: '10.0.0.5' });
  t.throws(() => parseGroup('10.1.2.3:7711'), /not a multicast group/);
  t.throws(() => parseGroup('239.1.2.3'), /want GROUP:PORT/);
  t.throws(() => parseGroup('239.1.2.3:0'), /port out of range/);
});

t.test('discovery: announcements back off ×1.4 from 1 s, then stay at 30 s', async (t) => {
  t.same([0, 1, 2, 3].map((n) => announceGap(n)), [1000, 1400, 1960, 2744]);
  t.equal(announceGap(9), 20661);
  t.equal(announceGap(10), 28925);
  t.equal(announceGap(11), 30000);
  t.equal(announceGap(1000), 30000);
});

t.test('discovery: an unspecified announced host becomes the source address', async (t) => {
  const u = '/123/Q0123456789abcdef';
  t.equal(fixHost(`circuit://0.0.0.0:7000${u}`, '10.1.2.3'), `circuit://10.1.2.3:7000${u}`);
  t.equal(fixHost(`circuit://[::]:7000${u}`, 'fe80::1'), `circuit://[fe80::1]:7000${u}`);
  t.equal(fixHost(`circuit://10.9.9.9:7000${u}`, '10.1.2.3'), `circuit://10.9.9.9:7000${u}`, 'a concrete host stays');
});

t.test('mesh: packet addresses are the URL host and port', async (t) => {
  t.equal(packetAddr('circuit://127.0.0.1:4000/1/Q0123456789abcdef'), '127.0.0.1:4000');
  t.equal(packetAddr('circuit://[::1]:4000/1/Q0123456789abcdef'), '[::1]:4000');
  t.equal(hostPort('::1', 5), '[::1]:5');
});
