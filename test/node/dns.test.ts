import t, { type Test } from 'tap';
import * as dgram from 'node:dgram';
import * as net from 'node:net';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { DnsElement, lookup, parseAddr } from '../../src/node/kinds/dns';
import { parseZone, type ZoneRecord } from '../../src/node/zone';
import { systemClock } from '../../src/kit/clock';
import type { ElementContext } from '../../src/node/element';

const run = promisify(execFile);

/** A fake ElementContext whose log lines the test can read. */
function fakeCtx(path = '/X88550014d4c82e4d/ns'): ElementContext & { lines: string[] } {
  const lines: string[] = [];
  return { path, clock: systemClock, log: (l: string) => lines.push(l), detach: () => undefined, lines };
}

/** Makes an element on loopback and scrubs it at the end of the test. */
async function mk(t: Test, addr?: string) {
  const ctx = fakeCtx();
  const el = await DnsElement.make(addr === undefined ? {} : { addr }, ctx);
  t.teardown(() => el.scrub());
  return { el, ctx };
}

function hostPort(address: string): { host: string; port: number } {
  const m = /^\[?([^\]]*)\]?:(\d+)$/.exec(address)!;
  return { host: m[1], port: Number(m[2]) };
}

/** Runs the real resolver against the element; extra args like '+tcp' or '+short'. */
async function dig(el: DnsElement, ...args: string[]): Promise<string> {
  const { host, port } = hostPort(el.peek().Address);
  const { stdout } = await run('dig', [`@${host}`, '-p', String(port), '+tries=1', '+time=2', ...args]);
  return stdout;
}

/** `dig +short` as a list of lines. */
async function short(el: DnsElement, name: string, type: string, tcp = false): Promise<string[]> {
  const out = await dig(el, name, type, '+short', ...(tcp ? ['+tcp'] : []));
  return out.split('\n').filter((l) => l !== '');
}

/** Status, flags and section counts of a full dig answer. */
async function status(el: DnsElement, name: string, type: string, tcp = false) {
  const out = await dig(el, name, type, ...(tcp ? ['+tcp'] : []));
  const st = /status: (\w+)/.exec(out)?.[1];
  const flags = /flags: ([^;]*);/.exec(out)?.[1].trim().split(' ');
  const answers = Number(/ANSWER: (\d+)/.exec(out)?.[1]);
  return { status: st, flags, answers, out };
}

const ZONE = [
  'foo.example. A 1.2.3.4',
  'foo.example. 300 A 5.6.7.8',
  'foo.example. AAAA 2001:db8::1',
  'foo.example. MX 10 mx.foo.example.',
  'foo.example. TXT "v=spf1 -all" "second string"',
  'www.example. CNAME foo.example.',
  '_sip._tcp.example. SRV 10 60 5060 sip.example.',
  'Mixed.Case.example. A 9.9.9.9',
].join('\n');

for (const tcp of [false, true]) {
  const via = tcp ? 'tcp' : 'udp';
  t.test(`dns: every type answered over ${via}`, async (t) => {
    const { el } = await mk(t);
    await el.set(ZONE, false);
    t.same(await short(el, 'foo.example', 'A', tcp), ['1.2.3.4', '5.6.7.8']);
    t.same(await short(el, 'foo.example', 'AAAA', tcp), ['2001:db8::1']);
    t.same(await short(el, 'foo.example', 'MX', tcp), ['10 mx.foo.example.']);
    t.same(await short(el, 'foo.example', 'TXT', tcp), ['"v=spf1 -all" "second string"']);
    t.same(await short(el, 'www.example', 'CNAME', tcp), ['foo.example.']);
    t.same(await short(el, '_sip._tcp.example', 'SRV', tcp), ['10 60 5060 sip.example.']);
    t.same(await short(el, 'www.example', 'A', tcp), ['foo.example.', '1.2.3.4', '5.6.7.8'], 'CNAME followed');
  });

  t.test(`dns: NXDOMAIN, NODATA, AA flag and TTLs over ${via}`, async (t) => {
    const { el } = await mk(t);
    await el.set(ZONE, false);
    const nx = await status(el, 'nothing.example', 'A', tcp);
    t.equal(nx.status, 'NXDOMAIN', 'the original stayed silent; we answer NXDOMAIN');
    t.ok(nx.flags?.includes('aa'));
    const nodata = await status(el, 'foo.example', 'SRV', tcp);
    t.equal(nodata.status, 'NOERROR');
    t.equal(nodata.answers, 0);
    const ok = await status(el, 'foo.example', 'A', tcp);
    t.equal(ok.status, 'NOERROR');
    t.ok(ok.flags?.includes('aa'));
    t.notOk(ok.flags?.includes('ra'));
    t.match(ok.out, /foo\.example\.\s+3600\s+IN\s+A\s+1\.2\.3\.4/);
    t.match(ok.out, /foo\.example\.\s+300\s+IN\s+A\s+5\.6\.7\.8/, 'TTL as given');
  });
}

t.test('dns: names match case-insensitively; answers echo the asked spelling', async (t) => {
  const { el } = await mk(t);
  await el.set(ZONE, false);
  t.same(await short(el, 'FOO.EXAMPLE', 'A'), ['1.2.3.4', '5.6.7.8']);
  t.same(await short(el, 'mixed.case.example', 'A'), ['9.9.9.9']);
  t.same(await short(el, 'MIXED.CASE.EXAMPLE.', 'A', true), ['9.9.9.9']);
  const out = await dig(el, 'FoO.ExAmPlE', 'A', '+noall', '+answer');
  t.match(out, /^FoO\.ExAmPlE\.\s+3600/m);
});

t.test('dns: ANY gives every record of the name', async (t) => {
  const { el } = await mk(t);
  await el.set(ZONE, false);
  const any = await short(el, 'foo.example', 'ANY', true);
  t.same(any, ['1.2.3.4', '5.6.7.8', '2001:db8::1', '10 mx.foo.example.', '"v=spf1 -all" "second string"']);
});

t.test('dns: set appends, replace puts the new records in place of all', async (t) => {
  const { el } = await mk(t);
  await el.set('a.example A 1.1.1.1', false);
  await el.set('a.example A 2.2.2.2\nb.example A 3.3.3.3', false);
  t.same(await short(el, 'a.example', 'A'), ['1.1.1.1', '2.2.2.2']);
  await el.set('a.example A 1.1.1.1', false);
  t.same(await short(el, 'a.example', 'A'), ['1.1.1.1', '2.2.2.2', '1.1.1.1'], 'duplicates are kept');
  await el.set('c.example A 4.4.4.4', true);
  t.same(await short(el, 'a.example', 'A'), []);
  t.same(await short(el, 'b.example', 'A'), []);
  t.same(await short(el, 'c.example', 'A'), ['4.4.4.4']);
  t.same(Object.keys(el.peek().Records), ['c.example.']);
  await el.set('', true);
  t.same(el.peek().Records, {}, 'an empty replace clears');
  await el.set('', false);
  t.same(el.peek().Records, {}, 'an empty append does nothing');
});

t.test('dns: a bad line in a 5-line replace changes nothing', async (t) => {
  const { el } = await mk(t);
  await el.set('keep.example A 1.1.1.1', false);
  const before = el.peek();
  const text = ['a A 1.1.1.1', 'b A 2.2.2.2', 'c garbage A 3.3.3.3', 'd A 4.4.4.4', 'e A 5.5.5.5'].join('\n');
  await t.rejects(el.set(text, true), {
    code: 'EINVAL',
    message: 'set resoure record error: line 3: not a TTL: "garbage"',
  });
  await t.rejects(el.set(text, false), { code: 'EINVAL' });
  t.same(el.peek(), before);
  t.same(await short(el, 'keep.example', 'A'), ['1.1.1.1']);
  t.same(await short(el, 'a', 'A'), []);
});

t.test('dns: unset removes every record of a name, any case, dot optional, never fails', async (t) => {
  const { el } = await mk(t);
  await el.set(ZONE, false);
  await el.unset('FOO.example');
  t.same(await short(el, 'foo.example', 'A'), []);
  t.equal((await status(el, 'foo.example', 'MX')).status, 'NXDOMAIN');
  await el.unset('www.example.');
  t.same(await short(el, 'www.example', 'CNAME'), []);
  await el.unset('not.there');
  await el.unset('a..b');
  await el.unset('');
  t.same(Object.keys(el.peek().Records), ['_sip._tcp.example.', 'mixed.case.example.']);
});

t.test('dns: peek shape: Address and Records by lower-case name, sorted, tab form', async (t) => {
  const { el } = await mk(t);
  t.same(el.peek().Records, {});
  t.match(el.peek().Address, /^127\.0\.0\.1:\d+$/, 'loopback by default');
  await el.set('miek.nl. MX 10 mx.miek.nl.\nMiek.NL. A 1.2.3.4\nb A 5.6.7.8', false);
  t.same(el.peek().Records, {
    'b.': ['b.\t3600\tIN\tA\t5.6.7.8'],
    'miek.nl.': ['miek.nl.\t3600\tIN\tMX\t10 mx.miek.nl.', 'Miek.NL.\t3600\tIN\tA\t1.2.3.4'],
  });
});

t.test('dns: UDP and TCP share one port', async (t) => {
  const { el } = await mk(t);
  const { port } = hostPort(el.peek().Address);
  await t.rejects(bindUdpOnce('127.0.0.1', port), { code: 'EADDRINUSE' });
  await t.rejects(listenTcpOnce('127.0.0.1', port), { code: 'EADDRINUSE' });
});

t.test('dns: a large answer is truncated over UDP and dig retries over TCP', async (t) => {
  const { el } = await mk(t);
  const lines = Array.from({ length: 40 }, (_, i) => `big.example TXT "${String(i).padStart(2, '0')}${'x'.repeat(60)}"`);
  await el.set(lines.join('\n'), false);
  const udp = await dig(el, 'big.example', 'TXT', '+ignore', '+bufsize=512');
  t.match(udp, /flags: [^;]*\btc\b/, 'TC set over UDP');
  const all = await short(el, 'big.example', 'TXT');
  t.equal(all.length, 40, 'all 40 strings after the TCP retry');
});

t.test('dns: explicit addresses: [::1]:0 and 0.0.0.0:PORT', async (t) => {
  const { el } = await mk(t, '[::1]:0');
  t.match(el.peek().Address, /^\[::1\]:\d+$/);
  await el.set('v6.example A 1.2.3.4', false);
  t.same(await short(el, 'v6.example', 'A'), ['1.2.3.4']);
  t.same(await short(el, 'v6.example', 'A', true), ['1.2.3.4']);
  const port = await freePort();
  const { el: all } = await mk(t, `0.0.0.0:${port}`);
  t.equal(all.peek().Address, `0.0.0.0:${port}`);
  await all.set('any.example A 4.3.2.1', false);
  const { stdout } = await run('dig', ['@127.0.0.1', '-p', String(port), '+short', '+tries=1', '+time=2', 'any.example']);
  t.equal(stdout.trim(), '4.3.2.1');
});

t.test('dns: mkdns errors', async (t) => {
  const ctx = fakeCtx();
  await t.rejects(DnsElement.make({ addr: 'nonsense' }, ctx), {
    code: 'EINVAL',
    message: 'mkdns error: address "nonsense": want host:port or [ipv6]:port',
  });
  await t.rejects(DnsElement.make({ addr: '127.0.0.1' }, ctx), { message: /^mkdns error: / });
  await t.rejects(DnsElement.make({ addr: '127.0.0.1:70000' }, ctx), { message: /^mkdns error: .*port out of range/ });
  await t.rejects(DnsElement.make({ addr: 'example.com:53' }, ctx), { message: /^mkdns error: .*must be an IP/ });
  const { el } = await mk(t);
  await t.rejects(DnsElement.make({ addr: el.peek().Address }, ctx), { message: /^mkdns error: .*EADDRINUSE/ });
  // Only the TCP side taken: the UDP bind succeeds, the TCP one fails and UDP is let go again.
  const port = await freePort();
  const blocker = net.createServer();
  await new Promise<void>((r) => blocker.listen(port, '127.0.0.1', r));
  t.teardown(() => blocker.close());
  await t.rejects(DnsElement.make({ addr: `127.0.0.1:${port}` }, ctx), { message: /^mkdns error: tcp .*EADDRINUSE/ });
  const sock = await bindUdpOnce('127.0.0.1', port);
  sock.close();
});

t.test('dns: parseAddr', async (t) => {
  t.same(parseAddr('127.0.0.1:53'), { host: '127.0.0.1', port: 53 });
  t.same(parseAddr('[::1]:0'), { host: '::1', port: 0 });
  t.same(parseAddr(':5353'), { host: '::', port: 5353 });
  t.same(parseAddr('localhost:0'), { host: '127.0.0.1', port: 0 });
  t.type(parseAddr('::1:53'), 'string', 'IPv6 needs brackets');
  t.type(parseAddr('[1.2.3.4]:53'), 'string');
});

t.test('dns: rebind moves to the new address and frees the old port', async (t) => {
  const { el } = await mk(t);
  await el.set('r.example A 7.7.7.7', false);
  const old = el.peek().Address;
  const port = await freePort();
  await el.rebind(`127.0.0.1:${port}`);
  t.equal(el.peek().Address, `127.0.0.1:${port}`);
  t.same(await short(el, 'r.example', 'A'), ['7.7.7.7']);
  t.same(await short(el, 'r.example', 'A', true), ['7.7.7.7']);
  const { port: oldPort } = hostPort(old);
  (await bindUdpOnce('127.0.0.1', oldPort)).close();
  (await listenTcpOnce('127.0.0.1', oldPort)).close();
  await el.rebind(`127.0.0.1:${port}`);
  t.equal(el.peek().Address, `127.0.0.1:${port}`, 'rebinding to where it is is a no-op');
  await el.rebind('127.0.0.1:0');
  t.not(el.peek().Address, `127.0.0.1:${port}`);
  t.same(await short(el, 'r.example', 'A'), ['7.7.7.7']);
});

t.test('dns: a failed rebind keeps the old address serving', async (t) => {
  const { el } = await mk(t);
  await el.set('r.example A 7.7.7.7', false);
  const old = el.peek().Address;
  const other = await mk(t);
  await t.rejects(el.rebind(other.el.peek().Address), { code: 'EINVAL', message: /^rebind error: .*EADDRINUSE/ });
  await t.rejects(el.rebind('bad'), { message: /^rebind error: address "bad"/ });
  t.equal(el.peek().Address, old);
  t.same(await short(el, 'r.example', 'A'), ['7.7.7.7']);
  t.same(await short(el, 'r.example', 'A', true), ['7.7.7.7']);
});

t.test('dns: scrub closes both sockets and frees the port', async (t) => {
  const ctx = fakeCtx();
  const el = await DnsElement.make({}, ctx);
  const { port } = hostPort(el.peek().Address);
  // Hold a TCP connection open: scrub must not wait for it.
  const c = net.connect(port, '127.0.0.1');
  c.on('error', () => undefined);
  await new Promise((r) => c.once('connect', r));
  await el.scrub();
  (await bindUdpOnce('127.0.0.1', port)).close();
  (await listenTcpOnce('127.0.0.1', port)).close();
  await t.rejects(el.rebind('127.0.0.1:0'), { code: 'ECANCELED' });
  await el.scrub();
  c.destroy();
});

t.test('dns: malformed packets are logged and never crash the server', async (t) => {
  const { el, ctx } = await mk(t);
  await el.set('alive.example A 1.2.3.4', false);
  const { port } = hostPort(el.peek().Address);
  const sock = dgram.createSocket('udp4');
  t.teardown(() => sock.close());
  // Random datagrams of every size, plus the worst cases by hand.
  const worst = Buffer.alloc(20);
  for (const o of [4, 6, 8, 10]) worst.writeUInt16BE(0xffff, o);
  const loop = Buffer.from('0001000000010000000000000c000c000100010000', 'hex'); // name pointer to itself
  const packets = [Buffer.alloc(0), Buffer.alloc(1), Buffer.alloc(11), worst, loop];
  for (let i = 0; i < 300; i++) {
    const b = Buffer.alloc(Math.floor(Math.random() * 600));
    for (let j = 0; j < b.length; j++) b[j] = Math.floor(Math.random() * 256);
    packets.push(b);
  }
  const started = Date.now();
  for (const p of packets) sock.send(p, port, '127.0.0.1');
  // Random bytes over TCP: a few connections, some with a length prefix, some ended mid-message.
  for (let i = 0; i < 10; i++) {
    const c = net.connect(port, '127.0.0.1');
    c.on('error', () => undefined);
    const len = Math.floor(Math.random() * 300);
    const b = Buffer.alloc(len + 2);
    for (let j = 2; j < b.length; j++) b[j] = Math.floor(Math.random() * 256);
    b.writeUInt16BE(i % 2 ? len : len + 100, 0);
    c.end(b);
  }
  const c = net.connect(port, '127.0.0.1');
  c.on('error', () => undefined);
  c.end(Buffer.concat([Buffer.from([0, worst.length]), worst]));
  // The flood may still fill the socket's receive queue: a dropped query datagram is UDP, not a
  // failure, so the resolver gets three tries.
  const retry = async <T>(f: () => Promise<T>): Promise<T> => {
    for (let i = 0; ; i++) {
      try {
        return await f();
      } catch (e) {
        if (i === 2) throw e;
      }
    }
  };
  t.same(await retry(() => short(el, 'alive.example', 'A')), ['1.2.3.4'], 'still answers over UDP');
  t.same(await short(el, 'alive.example', 'A', true), ['1.2.3.4'], 'still answers over TCP');
  t.ok(Date.now() - started < 3000, 'hostile counts do not stall the server');
  t.ok(ctx.lines.some((l) => l.includes('malformed query from udp 127.0.0.1:')), 'udp logged with the peer');
  t.ok(ctx.lines.some((l) => l.startsWith('dns /X88550014d4c82e4d/ns: malformed query')), 'log names the element');
  t.ok(ctx.lines.length <= 6, `rate-limited (${ctx.lines.length} lines)`);
});

t.test('dns: header-only replies: FORMERR for two questions, NOTIMP for other opcodes, REFUSED for CH', async (t) => {
  const { el } = await mk(t);
  const { port } = hostPort(el.peek().Address);
  const ask = async (msg: Buffer) => {
    const sock = dgram.createSocket('udp4');
    try {
      const reply = new Promise<Buffer>((r) => sock.once('message', r));
      sock.send(msg, port, '127.0.0.1');
      return await reply;
    } finally {
      sock.close();
    }
  };
  const q = (id: number, flags: number, qd: number, cls = 1) => {
    const h = Buffer.alloc(12);
    h.writeUInt16BE(id, 0);
    h.writeUInt16BE(flags, 2);
    h.writeUInt16BE(qd, 4);
    const name = Buffer.from([1, 0x61, 0]);
    const tail = Buffer.alloc(4);
    tail.writeUInt16BE(1, 0);
    tail.writeUInt16BE(cls, 2);
    return Buffer.concat([h, ...Array.from({ length: qd }, () => Buffer.concat([name, tail]))]);
  };
  const two = await ask(q(7, 0x0100, 2));
  t.equal(two.readUInt16BE(0), 7);
  t.equal(two.readUInt16BE(2) & 0x800f, 0x8001, 'FORMERR');
  const notify = await ask(q(8, 4 << 11, 1));
  t.equal(notify.readUInt16BE(2) & 0xf, 4, 'NOTIMP');
  t.equal((notify.readUInt16BE(2) >> 11) & 0xf, 4, 'opcode echoed');
  const ch = await ask(q(9, 0, 1, 3));
  t.equal(ch.readUInt16BE(2) & 0xf, 5, 'REFUSED');
});

// ---- lookup, without sockets ------------------------------------------------------------------

function store(text: string): Map<string, ZoneRecord[]> {
  const m = new Map<string, ZoneRecord[]>();
  for (const r of parseZone(text)) m.set(r.key, [...(m.get(r.key) ?? []), r]);
  return m;
}

t.test('dns lookup: empty non-terminals are NOERROR, SOA goes in the authority section', async (t) => {
  const s = store('zone. SOA ns.zone. admin.zone. 1 2 3 4 60\na.b.zone. A 1.1.1.1');
  const ent = lookup(s, 'b.zone', 1);
  t.equal(ent.rcode, 0);
  t.same(ent.answers, []);
  t.equal(ent.authorities[0]?.type, 'SOA');
  const nx = lookup(s, 'x.zone', 1);
  t.equal(nx.rcode, 3);
  t.equal(nx.authorities.length, 1);
  t.equal(lookup(s, 'x.other', 1).authorities.length, 0, 'no SOA outside the zone');
  t.equal(lookup(s, '', 1).rcode, 0, 'the root has names below it');
});

t.test('dns lookup: CNAME chains stop at loops and at names we do not hold', async (t) => {
  const s = store('a CNAME b\nb CNAME a\nc CNAME elsewhere.example.\nd CNAME c');
  const loop = lookup(s, 'a', 1);
  t.equal(loop.rcode, 0);
  t.same(loop.answers.map((x) => x.owner), ['a.', 'b.']);
  const out = lookup(s, 'd', 1);
  t.same(out.answers.map((x) => [x.owner, x.record.type]), [['d.', 'CNAME'], ['c.', 'CNAME']]);
  t.same(lookup(s, 'a', 5).answers.length, 1, 'asking for CNAME gives the CNAME alone');
});

// ---- helpers ----------------------------------------------------------------------------------

function bindUdpOnce(host: string, port: number): Promise<dgram.Socket> {
  return new Promise((resolve, reject) => {
    const s = dgram.createSocket('udp4');
    s.once('error', (e) => {
      s.close();
      reject(e);
    });
    s.bind(port, host, () => resolve(s));
  });
}

function listenTcpOnce(host: string, port: number): Promise<net.Server> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(port, host, () => resolve(s));
  });
}

/** A port free for both UDP and TCP on loopback right now. */
async function freePort(): Promise<number> {
  for (;;) {
    const s = await listenTcpOnce('127.0.0.1', 0);
    const port = (s.address() as net.AddressInfo).port;
    await new Promise((r) => s.close(r));
    try {
      (await bindUdpOnce('127.0.0.1', port)).close();
      return port;
    } catch {
      // taken for UDP: try another
    }
  }
}
