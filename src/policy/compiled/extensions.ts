/**
 * Cedar's extension types — `decimal`, `ipaddr`, `datetime`, `duration` — and their functions, with Cedar's
 * exact parsing rules, equality, ordering and error messages (checked against `@cedar-policy/cedar-wasm` 4.13
 * in `extensions.test.ts`).
 *
 * Nothing here throws for a Cedar error: a failed parse or a wrong argument is an {@link ExtensionError}
 * value, which the compiled evaluator turns into a per-policy evaluation error, as Cedar does.
 *
 * @see https://docs.cedarpolicy.com/policies/syntax-datatypes.html
 * @see https://docs.cedarpolicy.com/policies/syntax-operators.html#extension-functions
 */
import { LONG_MAX, LONG_MIN, typeOfValue, type CedarValue, type ExtensionValue } from './value.ts';

/** A Cedar extension-function failure, as a value. `message` is the text Cedar reports. */
export class ExtensionError {
  readonly message: string;

  constructor(message: string) {
    this.message = message;
  }
}

/** Cedar's wording for a failure inside an extension function (`EvaluationError::FailedExtensionFunctionApplication`). */
function failed(extensionName: string, message: string): ExtensionError {
  return new ExtensionError(`error while evaluating \`${extensionName}\` extension function: ${message}`);
}

function typeError(expected: string, got: CedarValue): ExtensionError {
  return new ExtensionError(`type error: expected ${expected}, got ${typeOfValue(got)}`);
}

const inLongRange = (n: bigint): boolean => n >= LONG_MIN && n <= LONG_MAX;

/** UTF-8 length: Cedar (Rust) measures strings in bytes where its parsers limit a length. */
function utf8Length(s: string): number {
  return Buffer.byteLength(s, 'utf8');
}

// ---------------------------------------------------------------------------------------------------------
// decimal
// ---------------------------------------------------------------------------------------------------------

/**
 * A Cedar `decimal`: a signed 64-bit integer scaled by 10^4 (four fraction digits).
 *
 * @see https://docs.cedarpolicy.com/policies/syntax-datatypes.html#datatype-decimal
 */
export class Decimal implements ExtensionValue {
  readonly extension = 'decimal';
  /** The number times 10^4, within Cedar's Long range. */
  readonly value: bigint;

  constructor(value: bigint) {
    this.value = value;
  }

  equals(other: ExtensionValue): boolean {
    return other instanceof Decimal && other.value === this.value;
  }

  canonical(): string {
    return this.value.toString();
  }
}

// Cedar matches `^(-?\d+)\.(\d+)$` with the Rust regex crate, whose `\d` is any Unicode decimal digit; a
// non-ASCII digit then fails Rust's integer parse, which Cedar reports as an overflow.
const DECIMAL_PATTERN = /^(-?\p{Nd}+)\.(\p{Nd}+)$/u;
const ASCII_INTEGER = /^-?[0-9]+$/;
const DECIMAL_DIGITS = 4;

/**
 * Parses `decimal("…")`'s argument: digits, a point, one to four fraction digits, an optional leading `-`.
 *
 * @example parseDecimal('-1.25') // Decimal { value: -12500n }
 * @see https://docs.cedarpolicy.com/policies/syntax-operators.html#function-decimal
 */
export function parseDecimal(text: string): Decimal | ExtensionError {
  const m = DECIMAL_PATTERN.exec(text);
  if (!m) return failed('decimal', `\`${text}\` is not a well-formed decimal value`);
  const whole = m[1] as string;
  const fraction = m[2] as string;
  const overflow = failed('decimal', 'overflow when converting to decimal');
  if (!ASCII_INTEGER.test(whole)) return overflow;
  const w = BigInt(whole);
  if (!inLongRange(w) || !inLongRange(w * 10n ** BigInt(DECIMAL_DIGITS))) return overflow;
  // Cedar counts the fraction's length in UTF-8 bytes before parsing it.
  const length = utf8Length(fraction);
  if (length > DECIMAL_DIGITS) return failed('decimal', `too many digits after the decimal in \`${text}\``);
  if (!ASCII_INTEGER.test(fraction)) return overflow;
  const f = BigInt(fraction) * 10n ** BigInt(DECIMAL_DIGITS - length);
  // The sign is the text's, so "-0.5" is negative (cedar-wasm 4.13: decimal("-0.5") != decimal("0.5")).
  const value = text.startsWith('-') ? w * 10n ** BigInt(DECIMAL_DIGITS) - f : w * 10n ** BigInt(DECIMAL_DIGITS) + f;
  if (!inLongRange(value)) return overflow;
  return new Decimal(value);
}

// ---------------------------------------------------------------------------------------------------------
// ipaddr
// ---------------------------------------------------------------------------------------------------------

/**
 * A Cedar `ipaddr`: an IPv4 or IPv6 address with a prefix length (32 or 128 for a single address). Two values
 * are equal when version, address bits and prefix are all equal: `ip("10.0.0.1/24") != ip("10.0.0.0/24")`.
 *
 * @see https://docs.cedarpolicy.com/policies/syntax-datatypes.html#datatype-ipaddr
 */
export class IpAddr implements ExtensionValue {
  readonly extension = 'ipaddr';
  readonly version: 4 | 6;
  /** The address bits as written (host bits are kept, not masked). */
  readonly addr: bigint;
  readonly prefix: number;
  /** An IPv4 address as a number, so that the common IPv4 checks need no BigInt arithmetic. */
  readonly #v4: number;

  constructor(version: 4 | 6, addr: bigint, prefix: number) {
    this.version = version;
    this.addr = addr;
    this.prefix = prefix;
    this.#v4 = version === 4 ? Number(addr) : 0;
  }

  equals(other: ExtensionValue): boolean {
    return other instanceof IpAddr && other.version === this.version && other.addr === this.addr && other.prefix === this.prefix;
  }

  canonical(): string {
    return `${this.version}:${this.addr.toString(16)}/${this.prefix}`;
  }

  /** `127.0.0.0/8` (with a prefix of at least 8) or `::1/128`. */
  isLoopback(): boolean {
    if (this.version === 4) return this.#v4 >>> 24 === 127 && this.prefix >= 8;
    return this.addr === 1n && this.prefix >= 128;
  }

  /** `224.0.0.0/4` or `ff00::/8`, with a prefix at least that long. */
  isMulticast(): boolean {
    if (this.version === 4) return this.#v4 >>> 28 === 0xe && this.prefix >= 4;
    return this.addr >> 120n === 0xffn && this.prefix >= 8;
  }

  /** Whether every address of this range lies within `other`'s; IPv4 and IPv6 never contain each other. */
  isInRange(other: IpAddr): boolean {
    if (this.version !== other.version) return false;
    if (this.version === 4) {
      const a = this.#v4;
      const b = other.#v4;
      const selfNetwork = (a & v4NetMask(this.prefix)) >>> 0;
      const otherNetwork = (b & v4NetMask(other.prefix)) >>> 0;
      const selfBroadcast = (a | v4HostMask(this.prefix)) >>> 0;
      const otherBroadcast = (b | v4HostMask(other.prefix)) >>> 0;
      return otherNetwork <= selfNetwork && selfBroadcast <= otherBroadcast;
    }
    const selfNetwork = this.addr & (V6_NET_MASKS[this.prefix] as bigint);
    const otherNetwork = other.addr & (V6_NET_MASKS[other.prefix] as bigint);
    const selfBroadcast = this.addr | (V6_HOST_MASKS[this.prefix] as bigint);
    const otherBroadcast = other.addr | (V6_HOST_MASKS[other.prefix] as bigint);
    return otherNetwork <= selfNetwork && selfBroadcast <= otherBroadcast;
  }
}

// JavaScript shifts count modulo 32, so the 0 and 32 ends are spelled out.
const v4HostMask = (prefix: number): number => (prefix >= 32 ? 0 : 0xffffffff >>> prefix);
const v4NetMask = (prefix: number): number => ~v4HostMask(prefix);
const V6_ALL = (1n << 128n) - 1n;
const V6_HOST_MASKS: readonly bigint[] = Array.from({ length: 129 }, (_, p) => V6_ALL >> BigInt(p));
const V6_NET_MASKS: readonly bigint[] = V6_HOST_MASKS.map((m) => V6_ALL ^ m);

/** The longest text Cedar accepts: `ABCD:EF01:2345:6789:ABCD:EF01:2345:6789/128`. */
const IP_TEXT_MAX_BYTES = 43;

/**
 * Parses `ip("…")`'s argument as Cedar does: Rust's standard IPv4/IPv6 text forms (IPv4 octets without
 * leading zeros; IPv6 groups of one to four hex digits, one `::`), an optional `/prefix` (decimal, no leading
 * zero, at most 32 or 128), and no IPv4 embedded in IPv6.
 *
 * @example parseIpAddr('10.0.0.0/8')
 * @see https://docs.cedarpolicy.com/policies/syntax-operators.html#function-ip
 */
export function parseIpAddr(text: string): IpAddr | ExtensionError {
  // The usual case, a plain dotted quad, without allocating: it cannot hit any of the checks below first.
  const quad = parseIpv4(text, 0, text.length);
  if (quad >= 0) return new IpAddr(4, BigInt(quad), 32);
  if (text.length > IP_TEXT_MAX_BYTES || (text.length > IP_TEXT_MAX_BYTES / 3 && utf8Length(text) > IP_TEXT_MAX_BYTES)) {
    return failed('ipaddr', `error parsing IP address from string \`${text}\`: string length is too large`);
  }
  if (countAtLeastTwo(text, ':') && countAtLeastTwo(text, '.')) {
    return failed('ipaddr', `error parsing IP address from string: We do not accept IPv4 embedded in IPv6 (e.g., ::ffff:127.0.0.1). Found: \`${text}\``);
  }
  const slash = text.indexOf('/');
  if (slash < 0) {
    const v6 = parseIpv6(text);
    return v6 === undefined ? failed('ipaddr', `invalid IP address: ${text}`) : new IpAddr(6, v6, 128);
  }
  const addrText = text.slice(0, slash);
  const prefixText = text.slice(slash + 1);
  const v4 = parseIpv4(text, 0, slash);
  const v6 = v4 >= 0 ? undefined : parseIpv6(addrText);
  if (v4 < 0 && v6 === undefined) return failed('ipaddr', `error parsing IP address from the string \`${addrText}\`: invalid IP address syntax`);
  const prefix = v4 >= 0 ? parsePrefix(prefixText, 32, 2) : parsePrefix(prefixText, 128, 3);
  if (prefix instanceof ExtensionError) return prefix;
  return v4 >= 0 ? new IpAddr(4, BigInt(v4), prefix) : new IpAddr(6, v6 as bigint, prefix);
}

function countAtLeastTwo(s: string, c: string): boolean {
  const first = s.indexOf(c);
  return first >= 0 && s.indexOf(c, first + 1) >= 0;
}

function parsePrefix(s: string, max: number, maxLength: number): number | ExtensionError {
  const length = utf8Length(s);
  if (length > maxLength) return failed('ipaddr', `error parsing prefix: string length ${length} is too large`);
  if (!/^[0-9]*$/.test(s)) return failed('ipaddr', `error parsing prefix \`${s}\`: encountered non-digit`);
  if (s.startsWith('0') && s !== '0') return failed('ipaddr', `error parsing prefix \`${s}\`: leading zero(s)`);
  // Rust parses the prefix as a u8; its errors read as below.
  if (s === '') return failed('ipaddr', 'error parsing prefix from the string ``: cannot parse integer from empty string');
  const n = Number(s);
  if (n > 255) return failed('ipaddr', `error parsing prefix from the string \`${s}\`: number too large to fit in target type`);
  if (n > max) return failed('ipaddr', `error parsing prefix: ${n} is larger than the limit ${max}`);
  return n;
}

/**
 * Rust's `Ipv4Addr::from_str` on `s[start, end)`: four decimal octets of one to three digits, no leading
 * zero, each ≤ 255. Returns the address as an unsigned 32-bit number, or -1.
 */
function parseIpv4(s: string, start: number, end: number): number {
  let addr = 0;
  let parts = 0;
  let i = start;
  while (parts < 4) {
    const first = i;
    let octet = 0;
    while (i < end && i - first < 4) {
      const c = s.charCodeAt(i) - 48;
      if (c < 0 || c > 9) break;
      octet = octet * 10 + c;
      i++;
    }
    const digits = i - first;
    if (digits === 0 || digits > 3 || octet > 255 || (digits > 1 && s.charCodeAt(first) === 48)) return -1;
    addr = addr * 256 + octet;
    parts++;
    if (parts < 4) {
      if (i >= end || s.charCodeAt(i) !== 46) return -1;
      i++;
    }
  }
  return i === end ? addr : -1;
}

const HEX_GROUP = /^[0-9a-fA-F]{1,4}$/;

/**
 * Rust's `Ipv6Addr::from_str`, without the embedded-IPv4 tail (any such text has two colons and three dots,
 * which Cedar refuses before parsing): up to eight groups, `::` standing for at least one zero group.
 */
function parseIpv6(s: string): bigint | undefined {
  const groups = (text: string): number[] | undefined => {
    if (text === '') return [];
    const out: number[] = [];
    for (const g of text.split(':')) {
      if (!HEX_GROUP.test(g)) return undefined;
      out.push(parseInt(g, 16));
    }
    return out;
  };
  const gap = s.indexOf('::');
  let all: number[];
  if (gap < 0) {
    const g = groups(s);
    if (!g || g.length !== 8) return undefined;
    all = g;
  } else {
    const head = groups(s.slice(0, gap));
    const tail = groups(s.slice(gap + 2));
    if (!head || !tail || head.length + tail.length > 7) return undefined;
    all = [...head, ...new Array<number>(8 - head.length - tail.length).fill(0), ...tail];
  }
  let addr = 0n;
  for (const g of all) addr = (addr << 16n) | BigInt(g);
  return addr;
}

// ---------------------------------------------------------------------------------------------------------
// datetime and duration
// ---------------------------------------------------------------------------------------------------------

/**
 * A Cedar `duration`: a signed 64-bit count of milliseconds. Ordered with `<`, `<=`, `>`, `>=`.
 *
 * @see https://docs.cedarpolicy.com/policies/syntax-datatypes.html#datatype-duration
 */
export class Duration implements ExtensionValue {
  readonly extension = 'duration';
  readonly ms: bigint;

  constructor(ms: bigint) {
    this.ms = ms;
  }

  equals(other: ExtensionValue): boolean {
    return other instanceof Duration && other.ms === this.ms;
  }

  canonical(): string {
    return this.ms.toString();
  }

  /** Cedar's text form of the value, as its error messages print it: `duration("…ms")`. */
  toCedar(): string {
    return `duration("${this.ms}ms")`;
  }
}

/**
 * A Cedar `datetime`: a signed 64-bit count of non-leap milliseconds since the Unix epoch. Ordered with `<`,
 * `<=`, `>`, `>=`.
 *
 * @see https://docs.cedarpolicy.com/policies/syntax-datatypes.html#datatype-datetime
 */
export class Datetime implements ExtensionValue {
  readonly extension = 'datetime';
  readonly epochMs: bigint;

  constructor(epochMs: bigint) {
    this.epochMs = epochMs;
  }

  equals(other: ExtensionValue): boolean {
    return other instanceof Datetime && other.epochMs === this.epochMs;
  }

  canonical(): string {
    return this.epochMs.toString();
  }

  /** Cedar's text form of the value, as its error messages print it. */
  toCedar(): string {
    return `datetime("1970-01-01").offset(duration("${this.epochMs}ms"))`;
  }
}

const DAY_MS = 86_400_000n;

// Cedar's grammar: `-?` then optional `<n>d`, `<n>h`, `<n>m`, `<n>s`, `<n>ms`, in that order.
const DURATION_PATTERN = /^-?(?:([0-9]+)d)?(?:([0-9]+)h)?(?:([0-9]+)m)?(?:([0-9]+)s)?(?:([0-9]+)ms)?$/;
const U64_MAX = 2n ** 64n - 1n;

/**
 * Parses `duration("…")`'s argument, e.g. `"1d2h3m4s5ms"` or `"-90m"`; at least one unit, each at most once,
 * in the order d h m s ms; the total must fit a signed 64-bit count of milliseconds.
 *
 * @see https://docs.cedarpolicy.com/policies/syntax-operators.html#function-duration
 */
export function parseDuration(text: string): Duration | ExtensionError {
  const invalid = failed('duration', 'invalid duration pattern');
  if (text === '' || text === '-') return invalid;
  const m = DURATION_PATTERN.exec(text);
  if (!m) return invalid;
  const overflow = failed('duration', 'Duration overflows internal representation');
  const scale = [DAY_MS, 3_600_000n, 60_000n, 1000n, 1n];
  let total = 0n;
  for (let i = 0; i < 5; i++) {
    const digits = m[i + 1];
    if (digits === undefined) continue;
    const n = BigInt(digits);
    // Each quantity is read as a u64 first, as Cedar does.
    if (n > U64_MAX) return overflow;
    total += n * (scale[i] as bigint);
  }
  // All terms share the sign, so the sum is in range exactly when Cedar's step-by-step checked sum is.
  const ms = text.startsWith('-') ? -total : total;
  if (!inLongRange(ms)) return overflow;
  return new Duration(ms);
}

const DATE_PATTERN = /^([0-9]{4})-([0-9]{2})-([0-9]{2})/;
const HMS_PATTERN = /^T([0-9]{2}):([0-9]{2}):([0-9]{2})/;
const MS_AND_OFFSET_PATTERN = /^(?:\.([0-9]{3}))?(?:Z|([+-])([0-9]{2})([0-9]{2}))$/;

/**
 * Parses `datetime("…")`'s argument: `YYYY-MM-DD`, `YYYY-MM-DDThh:mm:ssZ`, `YYYY-MM-DDThh:mm:ss.SSSZ`, or
 * either time form with a `+hhmm`/`-hhmm` offset instead of `Z` (offset hours < 24, minutes < 60). No leap
 * second. Checks run in Cedar's order (shape first, then the date's, time's and offset's ranges), so the
 * reported error is Cedar's.
 *
 * @see https://docs.cedarpolicy.com/policies/syntax-operators.html#function-datetime
 */
export function parseDatetime(text: string): Datetime | ExtensionError {
  const date = DATE_PATTERN.exec(text);
  if (!date) return failed('datetime', 'invalid date pattern');
  const [dateText, y, mo, d] = date as unknown as [string, string, string, string];
  const year = Number(y);
  const month = Number(mo);
  const day = Number(d);
  const dateValid = month >= 1 && month <= 12 && day >= 1 && day <= daysInMonth(year, month);
  const invalidDate = failed('datetime', `invalid date: ${dateText}`);
  const days = () => BigInt(daysFromCivil(year, month, day));
  if (dateText.length === text.length) return dateValid ? new Datetime(days() * DAY_MS) : invalidDate;

  const rest = text.slice(dateText.length);
  const hms = HMS_PATTERN.exec(rest);
  if (!hms) return failed('datetime', 'invalid hour/minute/second pattern');
  const [hmsText, hh, mm, ss] = hms as unknown as [string, string, string, string];
  const tail = MS_AND_OFFSET_PATTERN.exec(rest.slice(hmsText.length));
  if (!tail) return failed('datetime', 'invalid millisecond and/or offset pattern');
  if (!dateValid) return invalidDate;
  const h = Number(hh);
  const min = Number(mm);
  const s = Number(ss);
  if (h >= 24 || min >= 60 || s >= 60) return failed('datetime', `invalid hour/minute/second: ${hmsText.slice(1)}`);
  const ms = tail[1] === undefined ? 0 : Number(tail[1]);
  let offsetSeconds = 0;
  if (tail[2] !== undefined) {
    const oh = Number(tail[3]);
    const om = Number(tail[4]);
    // Cedar prints the offset's hours and minutes as plain integers, side by side ("+2400" → "240").
    if (oh >= 24 || om >= 60) return failed('datetime', `invalid offset range: ${oh}${om}`);
    offsetSeconds = (oh * 3600 + om * 60) * (tail[2] === '+' ? 1 : -1);
  }
  const timeMs = ((h * 60 + min) * 60 + s - offsetSeconds) * 1000 + ms;
  return new Datetime(days() * DAY_MS + BigInt(timeMs));
}

function isLeapYear(y: number): boolean {
  return (y % 4 === 0 && y % 100 !== 0) || y % 400 === 0;
}

function daysInMonth(y: number, m: number): number {
  return m === 2 ? (isLeapYear(y) ? 29 : 28) : [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31][m - 1] ?? 0;
}

/** Days since 1970-01-01 in the proleptic Gregorian calendar (year 0 included), as chrono counts them. */
function daysFromCivil(y: number, m: number, d: number): number {
  const yy = m <= 2 ? y - 1 : y;
  const era = Math.floor(yy / 400);
  const yoe = yy - era * 400;
  const doy = Math.floor((153 * (m + (m > 2 ? -3 : 9)) + 2) / 5) + d - 1;
  const doe = yoe * 365 + Math.floor(yoe / 4) - Math.floor(yoe / 100) + doy;
  return era * 146_097 + doe - 719_468;
}

// ---------------------------------------------------------------------------------------------------------
// The function table
// ---------------------------------------------------------------------------------------------------------

/** One Cedar extension function: a constructor (`ip("…")`) or a method (`a.isInRange(b)`). */
export interface ExtensionFunction {
  readonly name: string;
  /** Number of arguments, the receiver of a method included. */
  readonly arity: number;
  /** Whether the function builds a value from a string (and so may be folded when its argument is a literal). */
  readonly isConstructor: boolean;
  /** Applies the function to already evaluated arguments (exactly `arity` of them). */
  call(args: readonly CedarValue[]): CedarValue | ExtensionError;
}

function asString(v: CedarValue): string | ExtensionError {
  return typeof v === 'string' ? v : typeError('string', v);
}

function asExtension<T>(v: CedarValue, cls: abstract new (...a: never[]) => T, name: string): T | ExtensionError {
  return v instanceof cls ? v : typeError(name, v);
}

const constructorFn = (name: string, parse: (s: string) => CedarValue | ExtensionError): ExtensionFunction => ({
  name,
  arity: 1,
  isConstructor: true,
  call: ([arg]) => {
    const s = asString(arg as CedarValue);
    return s instanceof ExtensionError ? s : parse(s);
  },
});

function unary<T>(name: string, cls: abstract new (...a: never[]) => T, typeName: string, f: (x: T) => CedarValue | ExtensionError): ExtensionFunction {
  return {
    name,
    arity: 1,
    isConstructor: false,
    call: ([a]) => {
      const x = asExtension(a as CedarValue, cls, typeName);
      return x instanceof ExtensionError ? x : f(x);
    },
  };
}

function binary<T, U>(
  name: string,
  left: [abstract new (...a: never[]) => T, string],
  right: [abstract new (...a: never[]) => U, string],
  f: (x: T, y: U) => CedarValue | ExtensionError,
): ExtensionFunction {
  return {
    name,
    arity: 2,
    isConstructor: false,
    call: ([a, b]) => {
      const x = asExtension(a as CedarValue, left[0], left[1]);
      if (x instanceof ExtensionError) return x;
      const y = asExtension(b as CedarValue, right[0], right[1]);
      return y instanceof ExtensionError ? y : f(x, y);
    },
  };
}

const DEC: [typeof Decimal, string] = [Decimal, 'decimal'];
const DT: [typeof Datetime, string] = [Datetime, 'datetime'];
const DUR: [typeof Duration, string] = [Duration, 'duration'];

/** Floor of the datetime to its day; `undefined` where Cedar's i64 arithmetic overflows. */
function toDate(d: Datetime): bigint | undefined {
  const e = d.epochMs;
  if (e >= 0n) return (e / DAY_MS) * DAY_MS;
  if (e % DAY_MS === 0n) return e;
  const floored = (e / DAY_MS - 1n) * DAY_MS;
  return inLongRange(floored) ? floored : undefined;
}

/**
 * Every extension function Cedar 4.x defines, by the name its JSON policy form uses (`{"ip": [e]}`,
 * `{"isInRange": [a, b]}`).
 *
 * @see https://docs.cedarpolicy.com/policies/syntax-operators.html#extension-functions
 */
export const EXTENSION_FUNCTIONS: ReadonlyMap<string, ExtensionFunction> = new Map(
  [
    constructorFn('decimal', parseDecimal),
    binary('lessThan', DEC, DEC, (a, b) => a.value < b.value),
    binary('lessThanOrEqual', DEC, DEC, (a, b) => a.value <= b.value),
    binary('greaterThan', DEC, DEC, (a, b) => a.value > b.value),
    binary('greaterThanOrEqual', DEC, DEC, (a, b) => a.value >= b.value),

    constructorFn('ip', parseIpAddr),
    unary('isIpv4', IpAddr, 'ipaddr', (a) => a.version === 4),
    unary('isIpv6', IpAddr, 'ipaddr', (a) => a.version === 6),
    unary('isLoopback', IpAddr, 'ipaddr', (a) => a.isLoopback()),
    unary('isMulticast', IpAddr, 'ipaddr', (a) => a.isMulticast()),
    binary('isInRange', [IpAddr, 'ipaddr'], [IpAddr, 'ipaddr'], (a, b) => a.isInRange(b)),

    constructorFn('datetime', parseDatetime),
    constructorFn('duration', parseDuration),
    binary('offset', DT, DUR, (d, dur) => {
      const e = d.epochMs + dur.ms;
      return inLongRange(e) ? new Datetime(e) : failed('offset', `overflows when adding an offset: ${d.toCedar()}+(${dur.ms}ms)`);
    }),
    binary('durationSince', DT, DT, (a, b) => {
      const ms = a.epochMs - b.epochMs;
      return inLongRange(ms) ? new Duration(ms) : failed('durationSince', `overflows when computing the duration between ${a.toCedar()} and ${b.toCedar()}`);
    }),
    unary('toDate', Datetime, 'datetime', (d) => {
      const e = toDate(d);
      return e === undefined ? failed('toDate', `overflows when computing the date of ${d.toCedar()}`) : new Datetime(e);
    }),
    unary('toTime', Datetime, 'datetime', (d) => {
      const rem = d.epochMs % DAY_MS;
      return new Duration(rem < 0n ? rem + DAY_MS : rem);
    }),
    // Rust's integer division truncates toward zero, as BigInt division does.
    unary('toMilliseconds', Duration, 'duration', (d) => d.ms),
    unary('toSeconds', Duration, 'duration', (d) => d.ms / 1000n),
    unary('toMinutes', Duration, 'duration', (d) => d.ms / 1000n / 60n),
    unary('toHours', Duration, 'duration', (d) => d.ms / 1000n / 60n / 60n),
    unary('toDays', Duration, 'duration', (d) => d.ms / 1000n / 60n / 60n / 24n),
  ].map((f) => [f.name, f] as const),
);

/**
 * Calls an extension function by name, checking the number of arguments as Cedar does at evaluation time.
 * Returns `undefined` for a name Cedar does not define.
 *
 * @example callExtensionFunction('ip', ['10.0.0.1'])
 */
export function callExtensionFunction(name: string, args: readonly CedarValue[]): CedarValue | ExtensionError | undefined {
  const f = EXTENSION_FUNCTIONS.get(name);
  if (!f) return undefined;
  if (args.length !== f.arity) return arityError(f, args.length);
  return f.call(args);
}

/** Cedar's error for an extension function called with the wrong number of arguments. */
export function arityError(f: ExtensionFunction, got: number): ExtensionError {
  return new ExtensionError(`wrong number of arguments provided to extension function \`${f.name}\`: expected ${f.arity}, got ${got}`);
}

/**
 * Compares two values with Cedar's `<`: Longs, or two `datetime`s, or two `duration`s. Returns the sign of
 * `a - b`, or an error with Cedar's wording for any other pair.
 *
 * @see https://docs.cedarpolicy.com/policies/syntax-operators.html#operator-lessthan
 */
export function compareOrdered(a: CedarValue, b: CedarValue): number | ExtensionError {
  if (typeof a === 'bigint' && typeof b === 'bigint') return a < b ? -1 : a > b ? 1 : 0;
  if (a instanceof Datetime && b instanceof Datetime) return a.epochMs < b.epochMs ? -1 : a.epochMs > b.epochMs ? 1 : 0;
  if (a instanceof Duration && b instanceof Duration) return a.ms < b.ms ? -1 : a.ms > b.ms ? 1 : 0;
  // The error names what was expected given the other operand, as Cedar's does (checked with cedar-wasm).
  if (typeof a === 'bigint') return typeError('long', b);
  if (typeof b === 'bigint') return typeError('long', a);
  if (a instanceof Datetime || a instanceof Duration) return typeError(a.extension, b);
  if (b instanceof Datetime || b instanceof Duration) return typeError(b.extension, a);
  return new ExtensionError(`type error: expected one of [long, datetime, duration], got ${typeOfValue(a)}`);
}
