/**
 * The chaos suite's short run inside npm test (20 s of faults and workloads on three hosts in
 * network namespaces); `npm run chaos` runs it longer and prints the same table.
 */
import t from 'tap';
import { netnsAvailable } from '../helpers/netns';
import { runChaos, table } from './chaos';

t.test('chaos: a short run under loss, delay, duplication, reordering, partitions, SIGSTOP and killed clients', { skip: netnsAvailable() ? false : 'needs root with ip and iptables (network namespaces)' }, async (t) => {
  const r = await runChaos({ durationMs: 20_000, seed: 12 });
  t.comment('\n' + table(r));
  for (const h of r.hungCalls) t.comment(`hung: ${h}`);
  t.ok(r.sent > 0 && r.procsStarted > 0, 'the workloads ran');
  // The workloads retry what an operator's script would: a `wait` or stream reader that failed at
  // once because a partition cut its server off. Every invariant is an assertion: a lease granted
  // to a reader that left and a message whose receiver left during its acknowledgement are given
  // back (src/node/serve.ts; test/mesh/gone-reader.test.ts), which is what made 60 s runs lose a
  // message, and a drain `recv` then wait on an empty queue past its deadline (RELIABILITY.md).
  t.equal(r.lost, 0, 'no message lost');
  t.equal(r.duplicated, 0, 'no message duplicated');
  t.ok(r.streamEqual, 'the stream read across hosts, readers interrupted and resumed, is byte-exact');
  t.equal(r.hung, 0, 'no call outlived its deadline');
  t.equal(r.procsFinished, r.procsStarted, 'every process started was waited for');
});
