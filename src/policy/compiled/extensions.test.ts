import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { ExtensionError, callExtensionFunction, parseDatetime, parseDecimal, parseDuration, parseIpAddr, type Datetime, type Decimal, type Duration, type IpAddr } from './extensions.ts';
import { assertBoth, decideBoth, type Case } from './reference-check.ts';
import { valueEquals, valueKey } from './value.ts';

// Every row runs through cedar-wasm and the compiled path: both must give the expected outcome, messages included.

test('decimal: parsing boundaries and errors, as cedar-wasm', () => {
  const cases: Case[] = [
    ['decimal("1.0") == decimal("1.0000")', true],
    ['decimal("00001.0") == decimal("1.0")', true],
    ['decimal("0.1234") == decimal("0.1234")', true],
    ['decimal("-0.0") == decimal("0.0")', true],
    // The sign belongs to the whole number: -0.5 is negative (not 0.5).
    ['decimal("-0.5") == decimal("0.5")', false],
    ['decimal("-0.5").lessThan(decimal("0.0"))', true],
    ['decimal("-0.0001").lessThan(decimal("0.0"))', true],
    ['decimal("922337203685477.5807") == decimal("922337203685477.5807")', true],
    ['decimal("-922337203685477.5808").lessThan(decimal("-922337203685477.5807"))', true],
    ['decimal("922337203685477.5808") == decimal("1.0")', /`decimal` extension function: overflow when converting to decimal/],
    ['decimal("-922337203685477.5809") == decimal("1.0")', /overflow when converting to decimal/],
    ['decimal("922337203685478.0") == decimal("1.0")', /overflow/],
    ['decimal("9223372036854775808.0") == decimal("1.0")', /overflow/],
    ['decimal("99999999999999999999.00000") == decimal("1.0")', /overflow/],
    ['decimal("1.23456") == decimal("1.0")', /too many digits after the decimal in `1.23456`/],
    ['decimal("1.000000000000000000000000") == decimal("1.0")', /too many digits/],
    ['decimal("1.") == decimal("1.0")', /`1.` is not a well-formed decimal value/],
    ['decimal(".1") == decimal("1.0")', /not a well-formed/],
    ['decimal("+1.0") == decimal("1.0")', /not a well-formed/],
    ['decimal("1") == decimal("1.0")', /not a well-formed/],
    ['decimal("1.0 ") == decimal("1.0")', /not a well-formed/],
    ['decimal("1e3.0") == decimal("1.0")', /not a well-formed/],
    ['decimal("") == decimal("1.0")', /not a well-formed/],
    // Cedar's pattern admits any Unicode digit, then its integer parse fails: reported as an overflow.
    ['decimal("١.0") == decimal("1.0")', /overflow when converting to decimal/],
    ['decimal("1.٣") == decimal("1.0")', /overflow/],
    // ... and the fraction's length is counted in UTF-8 bytes (three Arabic-Indic digits are six bytes).
    ['decimal("1.٣٣٣") == decimal("1.0")', /too many digits/],
    ['decimal(1) == decimal("1.0")', /type error: expected string, got long/],
  ];
  assertBoth(cases);
});

test('decimal: ordering methods, equality, and no operator overloading', () => {
  assertBoth([
    ['decimal("1.1").greaterThan(decimal("1.0"))', true],
    ['decimal("1.1").greaterThan(decimal("1.1"))', false],
    ['decimal("1.1").greaterThanOrEqual(decimal("1.1"))', true],
    ['decimal("1.1").lessThanOrEqual(decimal("1.1"))', true],
    ['decimal("1.1").lessThan(decimal("1.1"))', false],
    ['decimal("-2.5").lessThan(decimal("-2.4999"))', true],
    ['decimal("1.0") != decimal("1.0001")', true],
    ['decimal("1.0") == "1.0"', false],
    ['decimal("1.0").lessThan("1.0")', /type error: expected decimal, got string/],
    ['decimal("1.0").lessThan(1)', /type error: expected decimal, got long/],
    ['duration("1d").lessThan(duration("2d"))', /type error: expected decimal, got duration/],
    ['decimal("-0.5") < decimal("0.0")', /type error: expected one of \[long, datetime, duration\], got decimal/],
    ['decimal("1.0") < 1', /type error: expected long, got decimal/],
    ['[decimal("1.0"), decimal("1.0000")] == [decimal("1.0")]', true],
  ]);
  assert.equal((parseDecimal('-12.5') as Decimal).value, -125000n);
  assert.equal((parseDecimal('922337203685477.5807') as Decimal).value, 2n ** 63n - 1n);
});

test('ipaddr: accepted and refused texts, as cedar-wasm', () => {
  assertBoth([
    ['ip("1.2.3.4") == ip("1.2.3.4/32")', true],
    ['ip("255.255.255.255") == ip("255.255.255.255/32")', true],
    ['ip("::1") == ip("0:0:0:0:0:0:0:1")', true],
    ['ip("::1/128") == ip("::1")', true],
    ['ip("::") == ip("0::0")', true],
    ['ip("0000::1") == ip("::1")', true],
    ['ip("ABCD::1") == ip("abcd::1")', true],
    ['ip("1:2:3:4:5:6:7::") == ip("1:2:3:4:5:6:7:0")', true],
    ['ip("::2:3:4:5:6:7:8") == ip("0:2:3:4:5:6:7:8")', true],
    ['ip("abcd:ef01:2345:6789:abcd:ef01:2345:6789/128") == ip("abcd:ef01:2345:6789:abcd:ef01:2345:6789")', true],
    // Host bits are kept: a range is equal only to the same address and prefix.
    ['ip("10.0.0.1/24") == ip("10.0.0.0/24")', false],
    ['ip("10.0.0.0/24") == ip("10.0.0.0/25")', false],
    ['ip("0.0.0.0") == ip("::")', false],
    ['ip("01.2.3.4") == ip("1.2.3.4")', /`ipaddr` extension function: invalid IP address: 01.2.3.4/],
    ['ip("256.1.1.1") == ip("1.1.1.1")', /invalid IP address: 256.1.1.1/],
    ['ip("1.2.3.4.5") == ip("1.1.1.1")', /invalid IP address/],
    ['ip("1.2.3") == ip("1.1.1.1")', /invalid IP address/],
    ['ip("1.2.3.4 ") == ip("1.2.3.4")', /invalid IP address/],
    ['ip("") == ip("1.2.3.4")', /invalid IP address/],
    ['ip("é") == ip("::1")', /invalid IP address: é/],
    ['ip("00000::1") == ip("::1")', /invalid IP address/],
    ['ip("1:2:3:4:5:6:7:8::") == ip("::1")', /invalid IP address/],
    ['ip("1::2::3") == ip("::1")', /invalid IP address/],
    ['ip(":::") == ip("::1")', /invalid IP address/],
    ['ip("1:2:3:4:5:6:7") == ip("::1")', /invalid IP address/],
    ['ip("1:2:3:4:5:6:7:8:9") == ip("::1")', /invalid IP address/],
    ['ip("::1%eth0") == ip("::1")', /invalid IP address/],
    ['ip("::ffff:1.2.3.4") == ip("1.2.3.4")', /We do not accept IPv4 embedded in IPv6/],
    ['ip("1.2.3/8") == ip("1.2.3.4")', /error parsing IP address from the string `1.2.3`: invalid IP address syntax/],
    ['ip("1.2.3.4/08") == ip("1.2.3.4/8")', /error parsing prefix `08`: leading zero\(s\)/],
    ['ip("1.2.3.4/") == ip("1.2.3.4/8")', /error parsing prefix from the string ``: cannot parse integer from empty string/],
    ['ip("1.2.3.4/33") == ip("1.2.3.4/8")', /error parsing prefix: 33 is larger than the limit 32/],
    ['ip("1.2.3.4/100") == ip("1.2.3.4")', /error parsing prefix: string length 3 is too large/],
    ['ip("1.2.3.4/8/8") == ip("1.2.3.4")', /string length 3 is too large/],
    ['ip("::1/1000") == ip("::1")', /string length 4 is too large/],
    ['ip("::1/256") == ip("::1")', /number too large to fit in target type/],
    ['ip("::1/129") == ip("::1")', /129 is larger than the limit 128/],
    ['ip("::1/1a") == ip("::1")', /error parsing prefix `1a`: encountered non-digit/],
    ['ip("1.2.3.4/0") == ip("1.2.3.4/0")', true],
    ['ip("abcd:ef01:2345:6789:abcd:ef01:2345:06789/128") == ip("::1")', /string length is too large/],
    ['ip(1) == ip("::1")', /type error: expected string, got long/],
  ]);
});

test('ipaddr: isIpv4, isIpv6, isLoopback, isMulticast, isInRange', () => {
  assertBoth([
    ['ip("1.2.3.4").isIpv4() && !ip("1.2.3.4").isIpv6()', true],
    ['ip("::1").isIpv6() && !ip("::1").isIpv4()', true],
    ['ip("127.0.0.1").isLoopback() && ip("127.255.255.255").isLoopback()', true],
    ['ip("127.0.0.1/8").isLoopback()', true],
    ['ip("127.0.0.1/7").isLoopback()', false],
    ['ip("::1").isLoopback()', true],
    ['ip("::1/127").isLoopback()', false],
    ['ip("::2").isLoopback()', false],
    ['ip("::ffff:ff00:1").isLoopback()', false],
    ['ip("224.0.0.0/4").isMulticast() && ip("239.255.255.255").isMulticast()', true],
    ['ip("224.0.0.0/3").isMulticast()', false],
    ['ip("240.0.0.0").isMulticast()', false],
    ['ip("ff00::/8").isMulticast()', true],
    ['ip("ff00::/7").isMulticast()', false],
    ['ip("10.1.2.3").isInRange(ip("10.0.0.0/8"))', true],
    ['ip("11.1.2.3").isInRange(ip("10.0.0.0/8"))', false],
    ['ip("10.0.0.0/8").isInRange(ip("10.0.0.0/8"))', true],
    ['ip("10.0.0.0/7").isInRange(ip("10.0.0.0/8"))', false],
    ['ip("10.0.0.0/9").isInRange(ip("10.0.0.1/8"))', true],
    ['ip("0.0.0.0/0").isInRange(ip("1.2.3.4/0"))', true],
    ['ip("1.2.3.4").isInRange(ip("1.2.3.4"))', true],
    ['ip("::1").isInRange(ip("127.0.0.1"))', false],
    ['ip("2001:db8::1").isInRange(ip("2001:db8::/32"))', true],
    ['ip("2001:db9::1").isInRange(ip("2001:db8::/32"))', false],
    ['ip("1.2.3.4").isInRange(1)', /type error: expected ipaddr, got long/],
    ['"1.2.3.4".isIpv4()', /type error: expected ipaddr, got string/],
    ['ip("1.2.3.4").isIpv4(1)', /wrong number of arguments provided to extension function `isIpv4`: expected 1, got 2/],
    ['ip("1.2.3.4") < ip("1.2.3.5")', /expected one of \[long, datetime, duration\], got ipaddr/],
  ]);
  const a = parseIpAddr('10.0.0.1/24') as IpAddr;
  assert.equal(a.version, 4);
  assert.equal(a.prefix, 24);
  assert.equal(a.addr, 0x0a000001n);
});

test('datetime: accepted forms, offsets and refusals, as cedar-wasm', () => {
  assertBoth([
    ['datetime("2024-10-15") == datetime("2024-10-15T00:00:00Z")', true],
    ['datetime("2024-10-15T00:00:00.000Z") == datetime("2024-10-15")', true],
    ['datetime("2024-10-15T11:38:02.101+1134") == datetime("2024-10-15T00:04:02.101Z")', true],
    ['datetime("2024-10-15T11:38:02-1134") == datetime("2024-10-15T23:12:02Z")', true],
    ['datetime("2024-10-15T23:59:00+2359") == datetime("2024-10-15T00:00:00Z")', true],
    ['datetime("2024-01-01T00:00:00.000-0000") == datetime("2024-01-01")', true],
    ['datetime("2024-02-29") == datetime("2024-02-29")', true],
    ['datetime("2000-02-29") == datetime("2000-02-29")', true],
    ['datetime("1970-01-01") == datetime("1970-01-01").offset(duration("0ms"))', true],
    ['datetime("0000-01-01").durationSince(datetime("1970-01-01")) == duration("-62167219200000ms")', true],
    ['datetime("0000-02-29") == datetime("0000-02-29")', true],
    ['datetime("9999-12-31T23:59:59.999Z").durationSince(datetime("1970-01-01")) == duration("253402300799999ms")', true],
    ['datetime("1900-02-29") == datetime("1900-02-28")', /`datetime` extension function: invalid date: 1900-02-29/],
    ['datetime("2025-02-29") == datetime("2025-02-28")', /invalid date: 2025-02-29/],
    ['datetime("2024-04-31") == datetime("2024-04-30")', /invalid date: 2024-04-31/],
    ['datetime("2024-00-01") == datetime("2024-01-01")', /invalid date: 2024-00-01/],
    ['datetime("2024-13-01") == datetime("2024-01-01")', /invalid date/],
    ['datetime("2024-1-15") == datetime("2024-01-15")', /invalid date pattern/],
    ['datetime("10000-01-01") == datetime("2024-01-15")', /invalid date pattern/],
    ['datetime("١٢٣٤-01-01") == datetime("2024-01-01")', /invalid date pattern/],
    ['datetime("2024-10-15x") == datetime("2024-10-15")', /invalid hour\/minute\/second pattern/],
    ['datetime("2024-10-15T") == datetime("2024-10-15")', /invalid hour\/minute\/second pattern/],
    ['datetime("2024-10-15Z") == datetime("2024-10-15")', /invalid hour\/minute\/second pattern/],
    ['datetime("2024-10-15T00:00:00") == datetime("2024-10-15")', /invalid millisecond and\/or offset pattern/],
    ['datetime("2024-10-15T00:00:00.1Z") == datetime("2024-10-15")', /invalid millisecond and\/or offset pattern/],
    ['datetime("2024-10-15T00:00:00.1000Z") == datetime("2024-10-15")', /invalid millisecond and\/or offset pattern/],
    ['datetime("2024-10-15T00:00:00ZZ") == datetime("2024-10-15")', /invalid millisecond and\/or offset pattern/],
    ['datetime("2024-10-15T00:00:00+01") == datetime("2024-10-15")', /invalid millisecond and\/or offset pattern/],
    // Shape is checked before ranges: a bad month with a bad tail reports the tail.
    ['datetime("2024-13-01T00:00:00") == datetime("2024-10-15")', /invalid millisecond and\/or offset pattern/],
    ['datetime("2024-13-01T25:00:00Z") == datetime("2024-10-15")', /invalid date: 2024-13-01/],
    ['datetime("2024-10-15T00:00:60Z") == datetime("2024-10-15")', /invalid hour\/minute\/second: 00:00:60/],
    ['datetime("2024-10-15T24:00:00Z") == datetime("2024-10-15")', /invalid hour\/minute\/second: 24:00:00/],
    ['datetime("2024-10-15T00:60:00Z") == datetime("2024-10-15")', /invalid hour\/minute\/second/],
    ['datetime("2024-10-15T11:38:02+2400") == datetime("2024-10-15")', /invalid offset range: 240/],
    ['datetime("2024-10-15T11:38:02+2360") == datetime("2024-10-15")', /invalid offset range: 2360/],
    ['datetime("2024-10-15T11:38:02-0060") == datetime("2024-10-15")', /invalid offset range: 060/],
    ['datetime(1) == datetime("2024-10-15")', /type error: expected string, got long/],
  ]);
  assert.equal((parseDatetime('1970-01-02') as Datetime).epochMs, 86_400_000n);
  assert.equal((parseDatetime('1969-12-31T23:59:59.999Z') as Datetime).epochMs, -1n);
});

test('datetime: ordering operators, offset, durationSince, toDate, toTime and their overflows', () => {
  // datetime("1970-01-01").offset(duration("±…ms")) reaches the ends of the i64 range.
  const min = 'datetime("1970-01-01").offset(duration("-9223372036854775808ms"))';
  const max = 'datetime("1970-01-01").offset(duration("9223372036854775807ms"))';
  assertBoth([
    ['datetime("2020-01-01") < datetime("2021-01-01")', true],
    ['datetime("2021-01-01") <= datetime("2021-01-01")', true],
    ['datetime("2024-01-01") > datetime("2023-01-01")', true],
    ['datetime("2024-01-01") >= datetime("2024-01-02")', false],
    ['datetime("2024-01-01") == duration("1d")', false],
    ['datetime("2020-01-01") < duration("2d")', /type error: expected datetime, got duration/],
    ['1 < datetime("2020-01-01")', /type error: expected long, got datetime/],
    ['"x" < datetime("2024-01-01")', /type error: expected datetime, got string/],
    ['decimal("1.0") < datetime("2024-01-01")', /type error: expected datetime, got decimal/],
    ['datetime("2024-10-15").offset(duration("1d")) == datetime("2024-10-16")', true],
    ['datetime("2024-10-15").offset(duration("-1d")) == datetime("2024-10-14")', true],
    ['datetime("2024-01-01").offset(1) == datetime("2024-01-01")', /type error: expected duration, got long/],
    ['datetime("2024-10-16").durationSince(datetime("2024-10-15")) == duration("24h")', true],
    ['datetime("2024-10-15").durationSince(datetime("2024-10-16")) == duration("-1d")', true],
    ['datetime("2024-10-15T13:14:15.016Z").toDate() == datetime("2024-10-15")', true],
    ['datetime("2024-10-15T13:14:15.016Z").toTime() == duration("13h14m15s16ms")', true],
    ['datetime("1969-12-31T12:00:00Z").toDate() == datetime("1969-12-31")', true],
    ['datetime("1969-12-31T12:00:00Z").toTime() == duration("12h")', true],
    ['datetime("1969-12-31").toDate() == datetime("1969-12-31")', true],
    ['datetime("1969-12-31").toTime() == duration("0ms")', true],
    [`${max}.toDate() == datetime("1970-01-01").offset(duration("9223372036828800000ms"))`, true],
    [`${max}.toTime() == duration("25975807ms")`, true],
    [`${min}.toTime() == duration("60424192ms")`, true],
    [`${min}.toDate() == datetime("1970-01-01")`, /`toDate` extension function: overflows when computing the date of datetime\("1970-01-01"\)\.offset\(duration\("-9223372036854775808ms"\)\)/],
    [`${max}.offset(duration("1ms")) == ${max}`, /`offset` extension function: overflows when adding an offset: datetime\("1970-01-01"\)\.offset\(duration\("9223372036854775807ms"\)\)\+\(1ms\)/],
    [`${min}.durationSince(datetime("1970-01-02")) == duration("1ms")`, /`durationSince` extension function: overflows when computing the duration between/],
    [`${min} < ${max}`, true],
  ]);
});

test('duration: grammar, sign, overflow and conversions, as cedar-wasm', () => {
  assertBoth([
    ['duration("1d2h3m4s5ms").toMilliseconds() == 93784005', true],
    ['duration("-1d2h3m4s5ms").toMilliseconds() == -93784005', true],
    ['duration("1d") == duration("24h")', true],
    ['duration("0ms") == duration("-0ms")', true],
    ['duration("90m") == duration("1h30m")', true],
    ['duration("1ms") != duration("1m")', true],
    ['duration("5m1ms").toMilliseconds() == 300001', true],
    ['duration("9223372036854775807ms").toMilliseconds() == (4294967296 * 1073741824 - 1) * 2 + 1', true],
    ['duration("9223372036854775807ms") == duration("9223372036854775807ms")', true],
    ['duration("-9223372036854775808ms") == duration("-9223372036854775808ms")', true],
    ['duration("106751991167d") == duration("106751991167d")', true],
    ['duration("9223372036854775808ms") == duration("0ms")', /`duration` extension function: Duration overflows internal representation/],
    ['duration("-9223372036854775809ms") == duration("0ms")', /Duration overflows internal representation/],
    ['duration("106751991168d") == duration("0ms")', /Duration overflows/],
    ['duration("18446744073709551616ms") == duration("0ms")', /Duration overflows/],
    ['duration("99999999999999999999999d") == duration("0ms")', /Duration overflows/],
    ['duration("106751991167d1ms") == duration("9223372036828800001ms")', true],
    ['duration("106751991167d23h59m59s999ms") == duration("0ms")', /Duration overflows/],
    ['duration("") == duration("0ms")', /`duration` extension function: invalid duration pattern/],
    ['duration("-") == duration("0ms")', /invalid duration pattern/],
    ['duration("1h1d") == duration("0ms")', /invalid duration pattern/],
    ['duration("1d1d") == duration("0ms")', /invalid duration pattern/],
    ['duration("1.5h") == duration("0ms")', /invalid duration pattern/],
    ['duration("1D") == duration("1d")', /invalid duration pattern/],
    ['duration(" 1d") == duration("1d")', /invalid duration pattern/],
    ['duration("1") == duration("1ms")', /invalid duration pattern/],
    ['duration("--1d") == duration("1d")', /invalid duration pattern/],
    ['duration("1d") < duration("2d")', true],
    ['duration("1d") <= duration("1d")', true],
    ['duration("1d") > duration("1h")', true],
    ['duration("1d") >= duration("24h")', true],
    ['duration("-1d") < duration("0ms")', true],
    ['duration("1d") < 1', /type error: expected long, got duration/],
    ['duration("-1ms").toSeconds() == 0', true],
    ['duration("-1999ms").toSeconds() == -1', true],
    ['duration("-25h").toDays() == -1', true],
    ['duration("1h").toMinutes() == 60 && duration("1h").toHours() == 1 && duration("47h").toDays() == 1', true],
    ['duration("2m").toSeconds() == 120', true],
    ['duration("1d").toMilliseconds() == 86400000', true],
    ['"1d".toDays() == 1', /type error: expected duration, got string/],
  ]);
  assert.equal((parseDuration('-9223372036854775808ms') as Duration).ms, -(2n ** 63n));
  assert.ok(parseDuration('9223372036854775808ms') instanceof ExtensionError);
});

test('extension values: equality and set keys by Cedar equality', () => {
  const d1 = parseDecimal('1.0') as Decimal;
  const d2 = parseDecimal('1.0000') as Decimal;
  assert.ok(valueEquals(d1, d2));
  assert.equal(valueKey(d1), valueKey(d2));
  assert.ok(!valueEquals(d1, parseDuration('10000ms') as Duration));
  assert.ok(valueEquals(parseIpAddr('::1') as IpAddr, parseIpAddr('0:0::1/128') as IpAddr));
  assert.ok(!valueEquals(parseIpAddr('0.0.0.1') as IpAddr, parseIpAddr('::1') as IpAddr));
  assert.ok(valueEquals(parseDuration('1d') as Duration, parseDuration('24h') as Duration));
  assert.ok(!valueEquals(parseDatetime('1970-01-01') as Datetime, parseDuration('0ms') as Duration));
  assert.deepEqual(callExtensionFunction('nope', []), undefined);
  assert.match((callExtensionFunction('ip', []) as ExtensionError).message, /expected 1, got 0/);
});

test('random texts: every constructor accepts, refuses and orders exactly as cedar-wasm (seeded)', () => {
  // Strings over each grammar's own alphabet, so that most are near-misses of valid forms.
  const texts = (alphabet: string, maxLength: number) => fc.string({ unit: fc.constantFrom(...alphabet.split('')), maxLength });
  const pad = (n: number, w: number) => String(n).padStart(w, '0');
  const datetimeOf = (month: number, day: number, hour: number, minute: number, ms: string[], offsets: string[]) =>
    fc
      .tuple(fc.integer({ min: 0, max: 9999 }), fc.integer({ min: 1, max: month }), fc.integer({ min: 1, max: day }), fc.integer({ min: 0, max: hour }), fc.integer({ min: 0, max: minute }), fc.constantFrom(...ms), fc.constantFrom(...offsets), fc.boolean())
      .map(([y, mo, d, h, mi, frac, off, dateOnly]) => {
        const date = `${pad(y, 4)}-${pad(mo, 2)}-${pad(d, 2)}`;
        return dateOnly ? date : `${date}T${pad(h, 2)}:${pad(mi, 2)}:${pad(mi, 2)}${frac}${off}`;
      });
  const datetimeText = fc.oneof(
    { arbitrary: texts('0123456789-T:.Z+', 30), weight: 1 },
    { arbitrary: datetimeOf(12, 28, 23, 59, ['', '.000', '.999'], ['Z', '+0000', '-2359', '+1234']), weight: 3 },
    { arbitrary: datetimeOf(13, 32, 25, 61, ['', '.000', '.5', '.1234'], ['Z', '+2400', '-0060', '', 'z']), weight: 2 },
  );
  const quantity = fc.oneof(
    { arbitrary: fc.integer({ min: 0, max: 100_000 }).map(String), weight: 4 },
    { arbitrary: fc.bigInt({ min: 0n, max: 2n ** 65n }).map(String), weight: 1 },
  );
  const durationText = fc.oneof(
    { arbitrary: texts('0123456789dhms-', 16), weight: 1 },
    {
      arbitrary: fc
        .tuple(fc.boolean(), ...['d', 'h', 'm', 's', 'ms'].map((u) => fc.option(quantity.map((n) => `${n}${u}`))))
        .map(([negative, ...parts]) => `${negative ? '-' : ''}${parts.filter((x) => x !== null).join('')}`),
      weight: 3,
    },
    { arbitrary: fc.tuple(fc.bigInt({ min: 9223372036854775000n, max: 9223372036854775809n }), fc.boolean()).map(([n, neg]) => `${neg ? '-' : ''}${n}ms`), weight: 1 },
  );
  // Whole parts around the decimal range's ends (±922337203685477), small ones, and some far beyond.
  const wholes = fc.oneof(
    fc.integer({ min: -1000, max: 1000 }).map(BigInt),
    fc.bigInt({ min: 922337203685470n, max: 922337203685480n }).chain((n) => fc.constantFrom(n, -n)),
    fc.bigInt({ min: -(2n ** 64n), max: 2n ** 64n }),
    fc.constant('-0'),
  );
  const kinds: Array<[string, fc.Arbitrary<string>, string]> = [
    ['decimal', fc.oneof(texts('0123456789.-', 24), fc.tuple(wholes, texts('0123456789', 5)).map(([w, f]) => `${w}.${f}`)), 'lessThan'],
    ['ip', fc.oneof(texts('0123456789abcdefABCDEF:./', 20), fc.ipV4().map((a) => `${a}/${a.length % 40}`), fc.ipV6()), 'isInRange'],
    ['datetime', datetimeText, ''],
    ['duration', durationText, ''],
  ];
  for (const [fn, arb, method] of kinds) {
    const samples = fc.sample(arb, { seed: 20261130, numRuns: 300 });
    const policies: Record<string, string> = {};
    samples.forEach((s, i) => {
      const other = samples[(i + 1) % samples.length] as string;
      // Equality, and an ordering against the next sample, so both parsing and comparison are exercised.
      const order = method ? `${fn}("${s}").${method}(${fn}("${other}"))` : `${fn}("${s}") < ${fn}("${other}")`;
      policies[`eq${i}`] = `permit(principal, action, resource) when { ${fn}("${s}") == ${fn}("${s}") };`;
      policies[`order${i}`] = `permit(principal, action, resource) when { ${order} };`;
    });
    const { reference, compiled } = decideBoth(policies);
    assert.deepEqual(compiled, reference, `${fn}: the compiled path differs from cedar-wasm`);
    // The samples must reach both outcomes to mean anything.
    const orderedWithoutError = samples.length - reference.errors.filter((e) => e.policyId.startsWith('order')).length;
    assert.ok(reference.errors.length > 0 && reference.reason.length >= 20 && orderedWithoutError >= 10, `${fn}: ${reference.errors.length} errored, ${reference.reason.length} satisfied`);
  }
});
