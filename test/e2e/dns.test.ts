/**
 * The DNS element end to end: a real daemon with its mount, driven by the real CLI and by bash
 * through the mount, and checked with a real resolver (`dig`, UDP and `+tcp`). The sessions in
 * docs/dns.md are these.
 */
import { execFile } from 'node:child_process';
import * as dgram from 'node:dgram';
import * as net from 'node:net';
import t, { type Test } from 'tap';
import { cli, eventually } from '../helpers/daemon';
import { daemonMount } from '../fs/helpers';

/** A port free for both UDP and TCP on 127.0.0.1 right now. */
async function freePort(): Promise<number> {
  for (let i = 0; i < 20; i++) {
    const srv = net.createServer();
    const port = await new Promise<number>((res, rej) => {
      srv.once('error', rej);
      srv.listen(0, '127.0.0.1', () => res((srv.address() as net.AddressInfo).port));
    });
    const sock = dgram.createSocket('udp4');
    const ok = await new Promise<boolean>((res) => {
      sock.once('error', () => res(false));
      sock.bind(port, '127.0.0.1', () => res(true));
    });
    sock.close();
    await new Promise((r) => srv.close(r));
    if (ok) return port;
  }
  throw new Error('no free port');
}

/** `dig @127.0.0.1 -p PORT ARGS +short` (one try, 2 s): its stdout, or '' when no answer. */
function dig(port: number, args: string, tcp = false): Promise<string> {
  const a = ['@127.0.0.1', '-p', String(port), ...args.split(' '), '+short', '+tries=1', '+time=2'];
  if (tcp) a.push('+tcp');
  return new Promise((res) => execFile('dig', a, { timeout: 10_000 }, (_e, out) => res(String(out))));
}

/** The response status (`NOERROR`, `NXDOMAIN`), or `none` when nothing answered. */
function status(port: number, args: string, tcp = false): Promise<string> {
  const a = ['@127.0.0.1', '-p', String(port), ...args.split(' '), '+tries=1', '+time=2'];
  if (tcp) a.push('+tcp');
  return new Promise((res) =>
    execFile('dig', a, { timeout: 10_000 }, (_e, out) => res(/status: (\w+)/.exec(String(out))?.[1] ?? 'none')),
  );
}

/** The same question over UDP and TCP must give the same answer; returns it. */
async function both(t: Test, port: number, q: string): Promise<string> {
  const [u, c] = await Promise.all([dig(port, q), dig(port, q, true)]);
  t.equal(c, u, `${q}: TCP answers as UDP`);
  return u;
}

t.test('dns through the CLI: mkdns, set, unset, peek, scrub, checked with dig', async (t) => {
  const { url, X } = await daemonMount(t);
  const c = (args: string[], input?: string) => cli(url, args, input);
  const port = await freePort();
  const ns = `/${X}/ns`;

  // mkdns PATH ADDR: both transports answer; nothing set yet, so NXDOMAIN (not silence).
  let r = await c(['mkdns', ns, `127.0.0.1:${port}`]);
  t.same([r.code, r.stdout, r.stderr], [0, '', ''], 'mkdns with an address');
  t.equal(await status(port, 'www.example A'), 'NXDOMAIN', 'unknown name: NXDOMAIN over UDP');
  t.equal(await status(port, 'www.example A', true), 'NXDOMAIN', 'unknown name: NXDOMAIN over TCP');

  const rrs = [
    'a.example. A 1.2.3.4',
    'a.example. A 1.2.3.5',
    'a.example. 60 AAAA 2001:db8::1',
    'a.example. MX 10 mx.example.',
    'a.example. TXT "hello world" second',
    'www.example. CNAME a.example.',
    '_sip._tcp.example. SRV 10 20 5060 sip.example.',
  ];
  for (const rr of rrs) {
    r = await c(['set', ns, rr]);
    t.same([r.code, r.stderr], [0, ''], `set ${rr}`);
  }
  t.equal(await both(t, port, 'a.example A'), '1.2.3.4\n1.2.3.5\n', 'A: every record of the type, in order');
  t.equal(await both(t, port, 'a.example AAAA'), '2001:db8::1\n', 'AAAA');
  t.equal(await both(t, port, 'a.example MX'), '10 mx.example.\n', 'MX');
  t.equal(await both(t, port, 'a.example TXT'), '"hello world" "second"\n', 'TXT');
  t.equal(await both(t, port, 'www.example A'), 'a.example.\n1.2.3.4\n1.2.3.5\n', 'CNAME followed');
  t.equal(await both(t, port, 'www.example CNAME'), 'a.example.\n', 'CNAME asked');
  t.equal(await both(t, port, '_sip._tcp.example SRV'), '10 20 5060 sip.example.\n', 'SRV');
  t.equal(await both(t, port, 'A.ExAmPlE A'), '1.2.3.4\n1.2.3.5\n', 'names match case-insensitively');
  t.equal(await status(port, 'a.example SRV'), 'NOERROR', 'a known name without the type: NODATA');
  t.equal(await dig(port, 'a.example SRV'), '', 'NODATA is empty');
  t.equal(await status(port, 'b.example A'), 'NXDOMAIN', 'a sibling is NXDOMAIN');
  // dig's full answer for ttl: given 60 for the AAAA, default 3600 for the A.
  const ttl = await new Promise<string>((res) =>
    execFile('dig', ['@127.0.0.1', '-p', String(port), 'a.example', 'AAAA', '+noall', '+answer', '+tries=1'], (_e, o) => res(String(o))),
  );
  t.match(ttl, /^a\.example\.\s+60\s+IN\s+AAAA\s+2001:db8::1$/m, 'TTL as given');

  // A bad record: one line on stderr, exit 1, nothing changed.
  const before = (await c(['peek', ns])).stdout;
  r = await c(['set', ns, 'b.example. A 999.1.2.3']);
  t.equal(r.code, 1, 'bad RR exits 1');
  t.equal(r.stderr, 'circuit: set resoure record error: line 1: not an IPv4 address: "999.1.2.3"\n', 'one-line error');
  r = await c(['set', ns, 'b.example. 1h IN']);
  t.match(r.stderr, /^circuit: set resoure record error: line 1: [^\n]+\n$/, 'missing type: one line');
  t.equal(r.code, 1);
  t.equal((await c(['peek', ns])).stdout, before, 'nothing changed');
  t.equal(await status(port, 'b.example A'), 'NXDOMAIN');

  // peek: Address and Records keyed by lower-case name.
  const peek = JSON.parse(before);
  t.equal(peek.Address, `127.0.0.1:${port}`, 'peek Address');
  t.same(Object.keys(peek.Records), ['_sip._tcp.example.', 'a.example.', 'www.example.'], 'peek Records keys, sorted');
  t.equal(peek.Records['a.example.'][0], 'a.example.\t3600\tIN\tA\t1.2.3.4', 'presentation form');

  // unset NAME, any case, dot optional.
  r = await c(['unset', ns, 'A.EXAMPLE']);
  t.same([r.code, r.stderr], [0, ''], 'unset');
  t.equal(await status(port, 'a.example A'), 'NXDOMAIN', 'unset name gone (UDP)');
  t.equal(await status(port, 'a.example MX', true), 'NXDOMAIN', 'unset name gone (TCP)');
  t.equal(await dig(port, 'www.example CNAME'), 'a.example.\n', 'other names stay');
  r = await c(['unset', ns, 'nothing.here']);
  t.equal(r.code, 0, 'unset of an unknown name does nothing');

  // mkdns without ADDR binds an ephemeral loopback port; peek says which.
  const ns2 = `/${X}/ns2`;
  r = await c(['mkdns', ns2]);
  t.equal(r.code, 0, 'mkdns without an address');
  const addr2 = JSON.parse((await c(['peek', ns2])).stdout).Address as string;
  t.match(addr2, /^127\.0\.0\.1:\d+$/, 'default: loopback, some port');
  const port2 = Number(addr2.split(':')[1]);
  await c(['set', ns2, 'x.y. A 10.0.0.1']);
  t.equal(await both(t, port2, 'x.y A'), '10.0.0.1\n', 'the second element answers on its own port');
  t.equal(await status(port, 'x.y A'), 'NXDOMAIN', 'and the first does not know it');

  // The same port twice: a clear error, no element.
  r = await c(['mkdns', `/${X}/ns3`, `127.0.0.1:${port}`]);
  t.equal(r.code, 1, 'mkdns on a taken port fails');
  t.match(r.stderr, /^circuit: mkdns error: (udp bind|tcp listen) EADDRINUSE/, r.stderr);
  t.equal((await c(['peek', `/${X}/ns3`])).stdout.trim(), 'null', 'no element left');

  // scrub frees the port: nothing answers, and it can be bound again.
  r = await c(['scrub', ns]);
  t.same([r.code, r.stderr], [0, ''], 'scrub');
  t.equal(await status(port, 'www.example A'), 'none', 'scrubbed: UDP silent');
  t.equal(await status(port, 'www.example A', true), 'none', 'scrubbed: TCP refused');
  r = await c(['mkdns', ns, `127.0.0.1:${port}`]);
  t.equal(r.code, 0, 'the port is free again');
  t.equal(await status(port, 'www.example A'), 'NXDOMAIN', 'a fresh element with no records');
  await c(['scrub', ns]);
  await c(['scrub', ns2]);
});

t.test('dns through the mount: mkdir, address, records (> and >>), unset, error, rebinding, peek, rmdir', async (t) => {
  const { run, S } = await daemonMount(t);
  const D = `${S}/X/ns/dns`;
  let r = await run(`mkdir -p ${D} && cat ${D}/address`);
  t.equal(r.code, 0, r.stderr);
  t.match(r.stdout, /^127\.0\.0\.1:\d+\n$/, 'mkdir dns binds loopback, some port');
  const port = Number(r.stdout.trim().split(':')[1]);
  t.equal(await status(port, 'a.b A'), 'NXDOMAIN', 'serving, no records');

  r = await run(`echo 'a.b. A 1.2.3.4' >> ${D}/records && echo 'A.B. A 1.2.3.5' >> ${D}/records && cat ${D}/records`);
  t.equal(r.code, 0, r.stderr);
  t.equal(r.stdout, 'a.b.\t3600\tIN\tA\t1.2.3.4\nA.B.\t3600\tIN\tA\t1.2.3.5\n', '>> adds');
  t.equal(await both(t, port, 'a.b A'), '1.2.3.4\n1.2.3.5\n', 'dig sees both');

  r = await run(`printf 'c.d. A 5.6.7.8\\nc.d. MX 5 mail.c.d.\\ne.f. 120 TXT "x y"\\n' > ${D}/records && cat ${D}/records`);
  t.equal(r.code, 0, r.stderr);
  t.equal(r.stdout, 'c.d.\t3600\tIN\tA\t5.6.7.8\nc.d.\t3600\tIN\tMX\t5 mail.c.d.\ne.f.\t120\tIN\tTXT\t"x y"\n', '> replaces all');
  t.equal(await status(port, 'a.b A'), 'NXDOMAIN', 'the old records are gone');
  t.equal((await both(t, port, 'C.D MX')).toLowerCase(), '5 mail.c.d.\n', 'the new ones answer, any case');
  // dns2 compresses names case-insensitively, so the MX target takes the question's spelling
  // (`mail.C.D.`): equal to a resolver, but RFC 4343 asks servers to keep the data's case.
  t.equal(await dig(port, 'C.D MX'), '5 mail.c.d.\n', 'RDATA names keep their case');
  t.equal(await both(t, port, 'e.f TXT'), '"x y"\n');

  // Five lines, the third bad: the shell command fails with EINVAL, nothing changes, error says
  // which line.
  const good = r.stdout;
  r = await run(`printf 'g.h. A 1.1.1.1\\ni.j. A 2.2.2.2\\nk.l. A bad\\nm.n. A 3.3.3.3\\no.p. A 4.4.4.4\\n' > ${D}/records; echo "rc=$?"`);
  t.match(r.stdout, /^rc=1\n$/, 'the shell command fails');
  t.match(r.stderr, /write error: Invalid argument/, 'with EINVAL');
  t.equal((await run(`cat ${D}/records`)).stdout, good, 'nothing changed');
  t.equal((await run(`cat ${D}/error`)).stdout, 'EINVAL: set resoure record error: line 3: not an IPv4 address: "bad"\n', 'error names the line');
  t.equal(await status(port, 'g.h A'), 'NXDOMAIN', 'no line of it was applied');
  t.equal(await dig(port, 'c.d A'), '5.6.7.8\n', 'the old records still answer');
  // The same with >>: nothing added.
  r = await run(`printf 'q.r. A 1.1.1.1\\nq.r. A nope\\n' >> ${D}/records; echo "rc=$?"; cat ${D}/records`);
  t.equal(r.stdout, `rc=1\n${good}`, '>> with a bad line adds nothing');

  // unset
  r = await run(`echo c.d. > ${D}/unset && cat ${D}/records`);
  t.equal(r.code, 0, r.stderr);
  t.equal(r.stdout, 'e.f.\t120\tIN\tTXT\t"x y"\n', 'unset removes every record of the name');
  t.equal(await status(port, 'c.d A', true), 'NXDOMAIN', 'dig: gone');

  // Rebinding: the new port answers, the old one does not.
  const port2 = await freePort();
  r = await run(`echo 127.0.0.1:${port2} > ${D}/address && cat ${D}/address`);
  t.equal(r.code, 0, r.stderr);
  t.equal(r.stdout, `127.0.0.1:${port2}\n`, 'address reads the new one');
  t.equal(await both(t, port2, 'e.f TXT'), '"x y"\n', 'the new port answers, records kept');
  t.equal(await status(port, 'e.f TXT'), 'none', 'the old port is silent (UDP)');
  t.equal(await status(port, 'e.f TXT', true), 'none', 'the old port is closed (TCP)');
  // A rebind that cannot bind fails and leaves it where it was.
  r = await run(`echo 10.255.255.1:53 > ${D}/address; echo "rc=$?"; cat ${D}/address`);
  t.equal(r.stdout, `rc=1\n127.0.0.1:${port2}\n`, 'failed rebind: stays');
  t.match((await run(`cat ${D}/error`)).stdout, /^EINVAL: rebind error: /, 'error file says why');
  t.equal(await dig(port2, 'e.f TXT'), '"x y"\n', 'still serving');

  // peek
  r = await run(`cat ${D}/peek`);
  const p = JSON.parse(r.stdout);
  t.same(p, { Address: `127.0.0.1:${port2}`, Records: { 'e.f.': ['e.f.\t120\tIN\tTXT\t"x y"'] } }, 'peek');

  // `: > records` empties them.
  r = await run(`: > ${D}/records; wc -l < ${D}/records`);
  t.equal(r.stdout.trim(), '0', 'an empty > clears');
  t.equal(await status(port2, 'e.f TXT'), 'NXDOMAIN');

  // rmdir frees the port.
  r = await run(`rmdir ${D} && ls ${S}/X/ns`);
  t.same([r.code, r.stdout], [0, ''], 'rmdir dns scrubs');
  t.equal(await status(port2, 'e.f TXT'), 'none', 'scrubbed: silent');
  await eventually(async () => {
    const s = net.createServer();
    const ok = await new Promise<boolean>((res) => {
      s.once('error', () => res(false));
      s.listen(port2, '127.0.0.1', () => res(true));
    });
    if (ok) await new Promise((res) => s.close(res));
    return ok;
  }, 3000);
  t.pass('the port can be bound again');
});
