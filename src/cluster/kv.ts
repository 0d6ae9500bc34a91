/** KV helpers of the cluster: buckets with a max age, and compare-and-set conflicts. */
import { Kvm, type KV } from '@nats-io/kv';
import { JetStreamApiError, JetStreamApiCodes, StorageType } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import { RegistryError } from '../errors.ts';

/**
 * Opens (creating when missing) a bucket keeping one value per key. `ttlMs`
 * is the bucket's max_age (nats-server 2.9 has no per-key TTL); 0 = none.
 * Safe to call from many processes at once.
 */
export async function openTtlBucket(nc: NatsConnection, bucket: string, ttlMs: number): Promise<KV> {
  const kvm = new Kvm(nc);
  try {
    return await kvm.create(bucket, { history: 1, storage: StorageType.File, ...(ttlMs > 0 ? { ttl: ttlMs } : {}) });
  } catch (err) {
    try {
      return await kvm.open(bucket);
    } catch {
      throw new RegistryError(`cannot open KV bucket ${bucket}: ${(err as Error).message}`, { cause: err });
    }
  }
}

/** True when a KV write failed its compare-and-set (the key moved on, or exists for a create). */
export function isCasConflict(err: unknown): boolean {
  return err instanceof JetStreamApiError && (err.code === JetStreamApiCodes.StreamWrongLastSequence || err.code === JetStreamApiCodes.StreamWrongLastSequenceUnknown);
}
