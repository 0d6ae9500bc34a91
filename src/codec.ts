/**
 * msgpack encoding of every wire message. Plain msgpack (no records, no
 * extensions) so that any language's msgpack library reads it.
 */
import { Packr, Unpackr } from 'msgpackr';

const packr = new Packr({ useRecords: false, moreTypes: false, variableMapSize: true });
const unpackr = new Unpackr({ useRecords: false, mapsAsObjects: true, int64AsType: 'number' });

export function encode(value: unknown): Uint8Array {
  return packr.pack(value);
}

/** Decodes msgpack; throws on malformed input (callers count it as `malformed`). */
export function decode(bytes: Uint8Array): unknown {
  return unpackr.unpack(bytes);
}

/** Decodes msgpack, returning undefined instead of throwing. */
export function tryDecode(bytes: Uint8Array): { ok: true; value: unknown } | { ok: false; error: Error } {
  try {
    return { ok: true, value: unpackr.unpack(bytes) };
  } catch (err) {
    return { ok: false, error: err instanceof Error ? err : new Error(String(err)) };
  }
}
