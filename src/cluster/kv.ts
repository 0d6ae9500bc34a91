/** KV helpers of the cluster: buckets with a max age, and compare-and-set conflicts. */
import type { KV } from '@nats-io/kv';
import { JetStreamApiError, JetStreamApiCodes } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import { openBucket } from '../registry.ts';

/**
 * Opens (creating when missing) a bucket keeping one value per key. `ttlMs`
 * is the bucket's max_age (nats-server 2.9 has no per-key TTL); 0 = none.
 * Replicated like every bucket (3 on a NATS cluster). Safe to call from many
 * processes at once.
 */
export function openTtlBucket(nc: NatsConnection, bucket: string, ttlMs: number): Promise<KV> {
  return openBucket(nc, bucket, 1, { ttlMs });
}

/** True when a KV write failed its compare-and-set (the key moved on, or exists for a create). */
export function isCasConflict(err: unknown): boolean {
  return err instanceof JetStreamApiError && (err.code === JetStreamApiCodes.StreamWrongLastSequence || err.code === JetStreamApiCodes.StreamWrongLastSequenceUnknown);
}
