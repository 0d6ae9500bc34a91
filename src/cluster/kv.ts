/** KV helpers of the cluster: buckets with a max age. */
import type { KV } from '@nats-io/kv';
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
