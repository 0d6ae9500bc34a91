/**
 * The 32-bit hash of the consistent-hash strategy: FNV-1a over the UTF-8 bytes
 * of the string, then murmur3's fmix32 finalizer. FNV-1a alone spreads keys
 * that differ only in their last character (`host#1`, `host#2`) poorly over
 * the ring; the finalizer fixes that. Both live in the contract (schemas/fnv.ts) so
 * an agent in another language can reproduce the ring bit for bit.
 */

import { fmix32, fnv1a32 } from '../../schemas/fnv.ts';

export { fmix32, fnv1a32 };

/** Unsigned 32-bit hash used for ring points and keys. */
export function hash32(s: string): number {
  return fmix32(fnv1a32(s));
}
