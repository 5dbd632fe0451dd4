import t from 'tap';
import {
  DEFAULT_TTL, ZoneError, asciiLower, canonicalIPv6, ipv6Groups, nameKey, parseRecord, parseTtl,
  parseZone, present, presentRdata,
} from '../../src/node/zone';
import { AppError } from '../../src/kit/errors';

/** Parses one line and gives its presentation form. */
const p = (line: string): string => {
  const r = parseRecord(line, 1);
  if (!r) throw new Error('no record');
  return present(r);
};

/** The error text a line gives (with its line number), or 'ok'. */
const err = (line: string, lineNo = 1): string => {
  try {
    parseRecord(line, lineNo);
    return 'ok';
  } catch (e) {
    return (e as Error).message;
  }
};

t.test('zone: presentation form of every type, tab-separated, byte for byte', async (t) => {
  const cases: Array<[string, string]> = [
    ['miek.nl. 300 IN MX 10 mx.miek.nl.', 'miek.nl.\t300\tIN\tMX\t10 mx.miek.nl.'],
    ['a.b. A 1.2.3.4', 'a.b.\t3600\tIN\tA\t1.2.3.4'],
    ['a.b. AAAA 2001:0DB8:0000::0001', 'a.b.\t3600\tIN\tAAAA\t2001:db8::1'],
    ['a.b. CNAME c.d.', 'a.b.\t3600\tIN\tCNAME\tc.d.'],
    ['a.b. NS ns1.b.', 'a.b.\t3600\tIN\tNS\tns1.b.'],
    ['4.3.2.1.in-addr.arpa. PTR host.b.', '4.3.2.1.in-addr.arpa.\t3600\tIN\tPTR\thost.b.'],
    ['_sip._tcp.b. SRV 10 60 5060 sip.b.', '_sip._tcp.b.\t3600\tIN\tSRV\t10 60 5060 sip.b.'],
    ['b. SOA ns.b. admin.b. 2024010101 7200 3600 1209600 300', 'b.\t3600\tIN\tSOA\tns.b. admin.b. 2024010101 7200 3600 1209600 300'],
    ['a.b. TXT "v=spf1 -all"', 'a.b.\t3600\tIN\tTXT\t"v=spf1 -all"'],
    ['a.b. TXT "one" "two" three', 'a.b.\t3600\tIN\tTXT\t"one" "two" "three"'],
  ];
  for (const [line, want] of cases) t.equal(p(line), want, line);
});

t.test('zone: relative names become absolute, @ is the root', async (t) => {
  t.equal(p('foo.example A 1.2.3.4'), 'foo.example.\t3600\tIN\tA\t1.2.3.4');
  t.equal(p('foo CNAME bar.example'), 'foo.\t3600\tIN\tCNAME\tbar.example.');
  t.equal(p('@ NS ns'), '.\t3600\tIN\tNS\tns.');
  t.equal(p('. MX 0 @'), '.\t3600\tIN\tMX\t0 .');
  t.equal(p('x MX 5 mail'), 'x.\t3600\tIN\tMX\t5 mail.');
  t.equal(p('_s._udp SRV 0 0 53 ns'), '_s._udp.\t3600\tIN\tSRV\t0 0 53 ns.');
});

t.test('zone: names keep their case for presentation and get a lower-case key', async (t) => {
  const r = parseRecord('Foo.EXAMPLE. A 1.2.3.4')!;
  t.equal(r.name, 'Foo.EXAMPLE.');
  t.equal(r.key, 'foo.example.');
  t.equal(present(r), 'Foo.EXAMPLE.\t3600\tIN\tA\t1.2.3.4');
  t.equal(p('a CNAME Target.Example'), 'a.\t3600\tIN\tCNAME\tTarget.Example.');
  t.equal(p('a a 1.2.3.4'), 'a.\t3600\tIN\tA\t1.2.3.4', 'type names are case-insensitive');
  t.equal(p('a 60 in txt x'), 'a.\t60\tIN\tTXT\t"x"', 'class names are case-insensitive');
});

t.test('zone: TTL and class in either order, both optional', async (t) => {
  t.equal(p('a 60 IN A 1.2.3.4'), 'a.\t60\tIN\tA\t1.2.3.4');
  t.equal(p('a IN 60 A 1.2.3.4'), 'a.\t60\tIN\tA\t1.2.3.4');
  t.equal(p('a IN A 1.2.3.4'), `a.\t${DEFAULT_TTL}\tIN\tA\t1.2.3.4`);
  t.equal(p('a 0 A 1.2.3.4'), 'a.\t0\tIN\tA\t1.2.3.4');
  t.equal(p('a 2147483647 A 1.2.3.4'), 'a.\t2147483647\tIN\tA\t1.2.3.4');
  t.equal(p('a 1h30m A 1.2.3.4'), 'a.\t5400\tIN\tA\t1.2.3.4');
  t.equal(p('a 1W A 1.2.3.4'), 'a.\t604800\tIN\tA\t1.2.3.4');
  t.equal(p('a 1d2h3m4s A 1.2.3.4'), 'a.\t93784\tIN\tA\t1.2.3.4');
});

t.test('zone: parseTtl', async (t) => {
  t.equal(parseTtl('3600'), 3600);
  t.equal(parseTtl('1h'), 3600);
  t.equal(parseTtl('1h30'), 3630, 'a bare number last counts seconds');
  t.equal(parseTtl('2147483648'), null, 'over 2^31-1');
  t.equal(parseTtl('99999999999w'), null);
  t.equal(parseTtl('1x'), null);
  t.equal(parseTtl('h'), null);
  t.equal(parseTtl('-1'), null);
  t.equal(parseTtl('1.5'), null);
  t.equal(parseTtl(''), null);
});

t.test('zone: comments, blanks, parentheses on one line, CRLF', async (t) => {
  t.equal(parseRecord('   ', 1), null);
  t.equal(parseRecord('; just a comment', 1), null);
  t.equal(p('a A 1.2.3.4 ; trailing comment'), 'a.\t3600\tIN\tA\t1.2.3.4');
  t.equal(p('  a\tA\t1.2.3.4  '), 'a.\t3600\tIN\tA\t1.2.3.4', 'leading blanks and tabs are ignored');
  t.equal(p('b SOA ns admin ( 1 2 3 4 5 )'), 'b.\t3600\tIN\tSOA\tns. admin. 1 2 3 4 5');
  t.equal(p('b SOA ns admin (1 1h 1m 1w 1d)'), 'b.\t3600\tIN\tSOA\tns. admin. 1 3600 60 604800 86400');
  const recs = parseZone('a A 1.1.1.1\r\n\r\n; c\r\nb A 2.2.2.2\r\n');
  t.same(recs.map(present), ['a.\t3600\tIN\tA\t1.1.1.1', 'b.\t3600\tIN\tA\t2.2.2.2']);
  t.same(parseZone(''), []);
  t.same(parseZone('\n\n; only comments\n'), []);
});

t.test('zone: TXT strings, escapes and presentation', async (t) => {
  t.equal(p('a TXT "semi;colon" "(paren)"'), 'a.\t3600\tIN\tTXT\t"semi;colon" "(paren)"');
  t.equal(p('a TXT "say \\"hi\\""'), 'a.\t3600\tIN\tTXT\t"say \\"hi\\""');
  t.equal(p('a TXT "back\\\\slash"'), 'a.\t3600\tIN\tTXT\t"back\\\\slash"');
  t.equal(p('a TXT "\\065\\066C"'), 'a.\t3600\tIN\tTXT\t"ABC"', '\\DDD is a byte');
  t.equal(p('a TXT "\\000\\255"'), 'a.\t3600\tIN\tTXT\t"\\000\\255"', 'non-printables present as \\DDD');
  t.equal(p('a TXT ""'), 'a.\t3600\tIN\tTXT\t""', 'an empty string');
  t.equal(p('a TXT "tab\there"'), 'a.\t3600\tIN\tTXT\t"tab\\009here"');
  t.equal(p('a TXT "é"'), 'a.\t3600\tIN\tTXT\t"\\195\\169"', 'UTF-8 bytes escaped like miekg');
  t.equal(p('a TXT "😀"'), 'a.\t3600\tIN\tTXT\t"\\240\\159\\152\\128"', 'astral characters');
  t.equal(p('a TXT word\\ with\\ spaces'), 'a.\t3600\tIN\tTXT\t"word with spaces"');
  t.equal(p('a TXT "x" ; comment "y"'), 'a.\t3600\tIN\tTXT\t"x"');
  const r = parseRecord('a TXT "ab" "" "\\255"')!;
  t.equal(r.type, 'TXT');
  if (r.type === 'TXT') t.same(r.strings.map((b) => [...b]), [[97, 98], [], [255]]);
  t.equal(p(`a TXT "${'x'.repeat(255)}"`).length, 'a.\t3600\tIN\tTXT\t""'.length + 255);
});

t.test('zone: AAAA canonical form (RFC 5952, v4-mapped like miekg)', async (t) => {
  const c = (s: string) => canonicalIPv6(ipv6Groups(s));
  t.equal(c('::'), '::');
  t.equal(c('::1'), '::1');
  t.equal(c('1::'), '1::');
  t.equal(c('2001:db8:0:0:1:0:0:1'), '2001:db8::1:0:0:1', 'first of equal runs');
  t.equal(c('2001:db8:0:1:1:1:1:1'), '2001:db8:0:1:1:1:1:1', 'a single zero group stays');
  t.equal(c('2001:DB8::00AB'), '2001:db8::ab');
  t.equal(c('::ffff:1.2.3.4'), '::ffff:1.2.3.4');
  t.equal(c('::ffff:0102:0304'), '::ffff:1.2.3.4');
  t.equal(c('::1.2.3.4'), '::102:304');
  t.equal(c('1:2:3:4:5:6:1.2.3.4'), '1:2:3:4:5:6:102:304');
  t.equal(c('1:0:0:2::3'), '1:0:0:2::3', 'the longest run wins');
  t.equal(c('1:0:0:2:0:0:3:4'), '1::2:0:0:3:4', 'first of two runs of two');
  t.same(ipv6Groups('1:2::7:8'), [1, 2, 0, 0, 0, 0, 7, 8]);
  t.same(ipv6Groups('1:2:3:4:5:6:7:8'), [1, 2, 3, 4, 5, 6, 7, 8]);
});

t.test('zone: errors name the line and the reason', async (t) => {
  t.equal(err('a.b. garbage A 1.2.3.4', 3), 'line 3: not a TTL: "garbage"');
  const cases: Array<[string, string]> = [
    ['a.b.', 'line 1: missing type'],
    ['a.b. 300 IN', 'line 1: missing type'],
    ['a 99999999999 A 1.2.3.4', 'line 1: not a TTL: "99999999999"'],
    ['a 1x A 1.2.3.4', 'line 1: not a TTL: "1x"'],
    ['a 60 60 A 1.2.3.4', 'line 1: TTL given twice: "60"'],
    ['a 60 garbage A 1.2.3.4', 'line 1: not a type: "garbage"'],
    ['a IN IN A 1.2.3.4', 'line 1: class given twice: "IN"'],
    ['a CH A 1.2.3.4', 'line 1: class CH is not supported (only IN)'],
    ['a CLASS3 A 1.2.3.4', 'line 1: class CLASS3 is not supported (only IN)'],
    ['a HINFO x y', 'line 1: unsupported type: "HINFO" (supported: A, NS, CNAME, SOA, PTR, MX, TXT, AAAA, SRV)'],
    ['a TYPE99 x', 'line 1: unsupported type: "TYPE99" (supported: A, NS, CNAME, SOA, PTR, MX, TXT, AAAA, SRV)'],
    ['a A', 'line 1: A takes 1 field (address), got 0'],
    ['a A 1.2.3.4 5.6.7.8', 'line 1: A takes 1 field (address), got 2'],
    ['a A 1.2.3', 'line 1: not an IPv4 address: "1.2.3"'],
    ['a A 1.2.3.256', 'line 1: not an IPv4 address: "1.2.3.256"'],
    ['a A 01.2.3.4', 'line 1: not an IPv4 address: "01.2.3.4"'],
    ['a A ::1', 'line 1: not an IPv4 address: "::1"'],
    ['a AAAA 1.2.3.4', 'line 1: not an IPv6 address: "1.2.3.4"'],
    ['a AAAA fe80::1%eth0', 'line 1: not an IPv6 address: "fe80::1%eth0"'],
    ['a AAAA 1::2::3', 'line 1: not an IPv6 address: "1::2::3"'],
    ['a MX mx.b.', 'line 1: MX takes 2 fields (preference exchange), got 1'],
    ['a MX 65536 mx.b.', 'line 1: not a preference: "65536"'],
    ['a MX -1 mx.b.', 'line 1: not a preference: "-1"'],
    ['a SRV 1 2 x t.', 'line 1: not a port: "x"'],
    ['a SRV 1 2 3', 'line 1: SRV takes 4 fields (priority weight port target), got 3'],
    ['a SOA ns. h. 4294967296 1 1 1 1', 'line 1: not a serial: "4294967296"'],
    ['a SOA ns. h. 1 x 1 1 1', 'line 1: not a refresh: "x"'],
    ['a SOA ns. h. 1 1 1 1', 'line 1: SOA takes 7 fields (mname rname serial refresh retry expire minimum), got 6'],
    ['a TXT', 'line 1: missing TXT data'],
    ['a TXT "unterminated', 'line 1: unterminated quoted string'],
    ['a TXT "x\\"', 'line 1: unterminated quoted string'],
    ['a TXT ab"cd"', 'line 1: unexpected quote inside a word'],
    ['a TXT "\\256"', 'line 1: bad escape \\256 (above 255)'],
    ['a TXT "\\12x"', 'line 1: bad escape \\12x (want three digits)'],
    [`a TXT "${'x'.repeat(256)}"`, 'line 1: TXT string longer than 255 bytes (256)'],
    ['a TXT x\\', 'line 1: backslash at end of line'],
    ['a CNAME "b."', 'line 1: unexpected quoted string: "b."'],
    ['"a" A 1.2.3.4', 'line 1: owner name cannot be a quoted string'],
    ['a "60" A 1.2.3.4', 'line 1: unexpected quoted string: "60"'],
    ['a..b A 1.2.3.4', 'line 1: empty label in owner name: "a..b"'],
    ['.a A 1.2.3.4', 'line 1: empty label in owner name: ".a"'],
    [`${'x'.repeat(64)} A 1.2.3.4`, `line 1: label longer than 63 bytes in owner name: "${'x'.repeat(64)}"`],
    [`${Array(64).fill('abc').join('.')} A 1.2.3.4`, 'line 1: owner name longer than 255 bytes'],
    ['a\\.b A 1.2.3.4', 'line 1: escapes in names are not supported: "a\\.b"'],
    ['é A 1.2.3.4', 'line 1: not a valid owner name: "é"'],
    ['a CNAME b..c', 'line 1: empty label in CNAME target: "b..c"'],
    ['a MX 1 x..y', 'line 1: empty label in exchange: "x..y"'],
    ['$TTL 60', 'line 1: directives are not supported: "$TTL"'],
    ['$ORIGIN example.', 'line 1: directives are not supported: "$ORIGIN"'],
    ['a SOA ns admin ( 1 2 3 4 5', 'line 1: unbalanced parentheses (a record must fit on one line)'],
    ['a SOA ns admin 1 2 3 4 5 )', 'line 1: unbalanced parentheses'],
    ['a A 1.2.3.4\u0001', 'line 1: control character 0x01'],
  ];
  for (const [line, want] of cases) t.equal(err(line), want, line);
});

t.test('zone: a ZoneError is an EINVAL AppError carrying line and reason', async (t) => {
  try {
    parseZone('a A 1.1.1.1\nb A 2.2.2.2\nc garbage A 3.3.3.3\n');
    t.fail('should throw');
  } catch (e) {
    t.ok(e instanceof ZoneError);
    t.ok(e instanceof AppError);
    const z = e as ZoneError;
    t.equal(z.code, 'EINVAL');
    t.equal(z.line, 3);
    t.equal(z.reason, 'not a TTL: "garbage"');
    t.equal(z.message, 'line 3: not a TTL: "garbage"');
  }
});

t.test('zone: parseZone is all-or-nothing and counts every physical line', async (t) => {
  t.throws(() => parseZone('a A 1.1.1.1\n\n; comment\nb A 999.1.1.1\nc A 3.3.3.3'), {
    message: 'line 4: not an IPv4 address: "999.1.1.1"',
  });
  t.throws(() => parseZone('a A 1.1.1.1\r\nb A x'), { message: 'line 2: not an IPv4 address: "x"' });
  t.equal(parseZone('a A 1.1.1.1\nb A 2.2.2.2\n').length, 2);
});

t.test('zone: nameKey normalises what unset is given', async (t) => {
  t.equal(nameKey('miek.nl'), 'miek.nl.');
  t.equal(nameKey('miek.nl.'), 'miek.nl.');
  t.equal(nameKey('  MIEK.NL \n'), 'miek.nl.');
  t.equal(nameKey('@'), '.');
  t.equal(nameKey('.'), '.');
  t.equal(nameKey(''), '.');
  t.equal(nameKey('a..b'), null);
  t.equal(nameKey('a b'), null);
});

t.test('zone: asciiLower touches A-Z only', async (t) => {
  t.equal(asciiLower('AbC.Ä.'), 'abc.Ä.');
});

t.test('zone: presentRdata alone', async (t) => {
  t.equal(presentRdata({ type: 'MX', preference: 10, exchange: 'mx.' }), '10 mx.');
  t.equal(presentRdata({ type: 'TXT', strings: [Buffer.from('a"b')] }), '"a\\"b"');
});

t.test('zone: presentation parses back to the same record', async (t) => {
  const lines = [
    'Mixed.Case. 60 IN TXT "a\\"b" "\\000" "é"',
    'x. 1 IN AAAA ::ffff:1.2.3.4',
    'x. 1 IN SRV 1 2 3 t.',
    'z. 5 IN SOA a. b. 1 2 3 4 5',
  ];
  for (const line of lines) {
    const once = p(line);
    t.equal(p(once), once, line);
  }
});
