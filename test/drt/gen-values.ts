/**
 * Values of a given type, drawn from pools that sit on the edges: i64 and 2^53 limits, empty and non-ASCII
 * strings, strings holding `*`, decimal limits, IPv4/IPv6 ranges and loopback/multicast addresses, dates
 * before 1970 and with offsets, durations near the i64 millisecond limits.
 */
import type { ExtName, SchemaModel, Ty, Val } from './model.ts';
import type { Rand } from './random.ts';
import { entityType } from './gen-schema.ts';

/** Longs that JSON carries exactly (entity and context data). */
export const DATA_LONGS: readonly bigint[] = [0n, 1n, -1n, 2n, 7n, 100n, -100n, 2147483648n, 3037000499n, 9007199254740991n, -9007199254740991n];
/** Longs for policy literals that JSON carries exactly, including factors whose product overflows i64. */
export const POLICY_LONGS: readonly bigint[] = [...DATA_LONGS, 3037000500n, 4294967296n, -4294967296n];
/**
 * Longs past 2^53: the i64 limits and their neighbours. `policyToJson` cannot carry them exactly (its JSON
 * numbers are JavaScript numbers), so a set holding one is declined by the compiled path; drawn rarely.
 */
export const BIG_POLICY_LONGS: readonly bigint[] = [
  9223372036854775807n,
  -9223372036854775808n,
  9223372036854775806n,
  4611686018427387904n,
  -4611686018427387904n,
  9007199254740993n,
];
export const STRINGS = ['', 'a', 'ab', 'abc', 'a*b', '*', 'A', 'é', 'e\u0301', 'x y', '\\', '"', 'ba', '\n', '🦀', 'a🦀b', 'aé'];
export const EXT_LITERALS: Readonly<Record<ExtName, readonly string[]>> = {
  decimal: ['0.0', '1.0', '1.00', '1.0000', '-1.5', '1.2345', '12.5', '0.0001', '922337203685477.5807', '-922337203685477.5808', '-0.0'],
  ipaddr: ['127.0.0.1', '10.0.0.1', '10.0.0.0/8', '192.168.1.7/24', '::1', '::1/128', '10.0.0.1/32', '192.168.1.0/24', '::', 'ff02::1', '224.0.0.1', '2001:db8::/32', '0.0.0.0/0', '127.0.0.0/8'],
  datetime: [
    '2024-01-01',
    '2024-01-01T00:00:00Z',
    '2024-02-29T23:59:59.999Z',
    '1970-01-01T00:00:00Z',
    '1969-12-31T23:59:59Z',
    '2024-06-15T12:30:00+0130',
    '2024-06-15T11:00:00Z',
    '2024-06-15T12:30:00-0800',
    '0001-01-01',
    '9999-12-31T23:59:59Z',
  ],
  duration: ['0ms', '1ms', '1s', '-1s', '1m', '1h', '60m', '3600000ms', '1d', '2d3h4m5s6ms', '-1d12h', '106751991167d', '9223372036854775807ms', '-9223372036854775808ms'],
};
/** Arguments no extension constructor accepts (dynamic mode only: they fail validation). */
export const BAD_EXT_LITERALS: Readonly<Record<ExtName, readonly string[]>> = {
  decimal: ['1.23456', '1', 'abc', '922337203685477.5808', ''],
  ipaddr: ['1.2.3', '::ffff:127.0.0.1', '::1/129', '127.0.0.01', '10.0.0.0/33', 'x'],
  datetime: ['2024-13-01', '2024-01-01T25:00:00Z', '2024-1-1', '2024-01-01T00:00:00', '2024-02-30'],
  duration: ['1x', '', '1h1d', '1.5h', '9223372036854775808ms'],
};
/**
 * Texts at the edge of each constructor's grammar, some accepted and some refused by Cedar: an evaluator's
 * parser must draw the line exactly where Cedar's does. Used in policies (strict validation drops the policies
 * whose literal Cedar refuses) and, rarely, in entity data and context (where Cedar then refuses the request).
 */
export const TRICKY_EXT_LITERALS: Readonly<Record<ExtName, readonly string[]>> = {
  decimal: ['+1.0', '1.', '.5', '01.0', '1e3', ' 1.0', '-.5', '0001.5', '1.23450', '-0.0001', '922337203685477.58070', '00.0'],
  ipaddr: [
    '010.0.0.1', '1.2.3.4/', '[::1]', '1:2:3:4:5:6:7:8', '1::2::3', '::1%eth0', '255.255.255.255', '256.0.0.1', '0.0.0.0',
    'fe80::/10', 'FF02::1', '10.0.0.1/8', '1.2.3.4/0', '::/0', '1.2.3.4/32 ', '2001:db8:0:0:0:0:0:1', '::ffff:0:0/96', '127.1',
  ],
  datetime: [
    '2024-01-01T00:00:00.1Z', '2024-01-01T00:00:00.123456Z', '2024-01-01T00:00:00+01:00', '2024-01-01T24:00:00Z', '2023-02-29',
    '2024-01-01T00:00:60Z', '+2024-01-01', '2024-01-01t00:00:00z', '2024-01-01T00:00:00-0000', '2024-01-01T00:00:00+2400',
    '2024-01-01T00:00:00+0059', '2024-12-31T23:59:59.999-2359', '0000-01-01', '2024-01-01T00:00Z',
  ],
  duration: ['1d1d', '1h-1m', '-0ms', '0d', '1H', '1ms1s', '1000000000000000000000ms', '1d2ms', '+1h', '-', '1', 'd', '-1d-1h', '9223372036854775807ms1ms', '106751991168d'],
};

export const EXT_FN: Readonly<Record<ExtName, 'decimal' | 'ip' | 'datetime' | 'duration'>> = {
  decimal: 'decimal',
  ipaddr: 'ip',
  datetime: 'datetime',
  duration: 'duration',
};

/** Ids of generated entities, by type; `missing` ids name entities the store does not hold. */
export interface UidPool {
  byType: ReadonlyMap<string, readonly string[]>;
}

export const MISSING_ID = 'ghost';

/** An entity id of `type`: usually an existing one, sometimes one no entity has. */
export function pickId(r: Rand, schema: SchemaModel, pool: UidPool, type: string, missingChance = 0.1): string {
  const def = entityType(schema, type);
  if (def?.enumIds) return r.pick(def.enumIds);
  const ids = pool.byType.get(type) ?? [];
  if (ids.length === 0 || r.chance(missingChance)) return MISSING_ID;
  return r.pick(ids);
}

/** A value of type `ty`, conforming to the schema. */
export function genValue(r: Rand, ty: Ty, schema: SchemaModel, pool: UidPool, depth = 0): Val {
  switch (ty.k) {
    case 'Bool':
      return { k: 'bool', v: r.chance(0.5) };
    case 'Long':
      return { k: 'long', v: r.pick(DATA_LONGS) };
    case 'String':
      // No lone UTF-16 surrogates: cedar-wasm throws on them, and after 1,146 such throws in one process every
      // later call fails ("memory access out of bounds"). Mandate refuses them before either engine sees them.
      return { k: 'str', v: r.pick(STRINGS) };
    case 'Entity':
      return { k: 'ent', type: ty.name, id: pickId(r, schema, pool, ty.name) };
    case 'Ext':
      return { k: 'ext', fn: EXT_FN[ty.name], arg: r.pick(r.chance(0.01) ? TRICKY_EXT_LITERALS[ty.name] : EXT_LITERALS[ty.name]) };
    case 'Set': {
      const n = depth > 3 ? 0 : r.int(0, 3);
      return { k: 'set', items: Array.from({ length: n }, () => genValue(r, ty.el, schema, pool, depth + 1)) };
    }
    case 'Record':
      return {
        k: 'rec',
        fields: ty.attrs.filter((a) => a.required || r.chance(0.6)).map((a) => [a.name, genValue(r, a.ty, schema, pool, depth + 1)] as [string, Val]),
      };
  }
}

/** A value that does not conform to `ty` (for refusal checks). */
export function genWrongValue(r: Rand, ty: Ty): Val {
  switch (ty.k) {
    case 'Long':
      return { k: 'str', v: '1' };
    case 'Record':
      return { k: 'long', v: 1n };
    case 'Set':
      return { k: 'bool', v: true };
    default:
      return r.chance(0.5) ? { k: 'long', v: 3n } : { k: 'set', items: [] };
  }
}
