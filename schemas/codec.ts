/**
 * msgpack encoding of every wire message and stored record of the contract.
 * Plain msgpack (no records, no extensions) so that any language's msgpack
 * library reads it (schemas/README.md, "Encoding").
 */
import { Packr, Unpackr, C1 } from 'msgpackr';

const packr = new Packr({ useRecords: false, moreTypes: false, variableMapSize: true });
const unpackr = new Unpackr({ useRecords: false, mapsAsObjects: true, int64AsType: 'number' });

export function encode(value: unknown): Uint8Array {
  return packr.pack(value);
}

/** Decodes msgpack; throws on malformed input (callers count it as `malformed`). */
export function decode(bytes: Uint8Array): unknown {
  const v: unknown = unpackr.unpack(bytes);
  // 0xc1 is "never used" in msgpack; msgpackr returns a marker for it instead of failing.
  if (v === C1) throw new Error('msgpack 0xc1 (never used) at top level');
  return v;
}

/** Decodes msgpack, returning undefined instead of throwing. */
export function tryDecode(bytes: Uint8Array): { ok: true; value: unknown } | { ok: false; error: Error } {
  try {
    return { ok: true, value: decode(bytes) };
  } catch (err) {
    return { ok: false, error: err instanceof Error ? err : new Error(String(err)) };
  }
}
