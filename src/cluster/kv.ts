/** KV helpers of the cluster: buckets with a max age. */
import type { KV } from '@nats-io/kv';
import { JetStreamApiCodes, JetStreamApiError } from '@nats-io/jetstream';
import { NoRespondersError } from '@nats-io/transport-node';
import type { NatsConnection } from '@nats-io/transport-node';
import { openBucket } from '../registry.ts';

/**
 * Opens (creating when missing) a bucket keeping one value per key. `ttlMs`
 * is the bucket's max_age (nats-server 2.9 has no per-key TTL); 0 = none.
 * Replicated like every bucket (3 on a NATS cluster). Safe to call from many
 * processes at once. `timeoutMs`: how long each operation waits (see
 * OpenBucketOptions.timeoutMs).
 */
export function openTtlBucket(nc: NatsConnection, bucket: string, ttlMs: number, timeoutMs?: number): Promise<KV> {
  return openBucket(nc, bucket, 1, { ttlMs, timeoutMs });
}

/** The error, or one in its cause chain, is a publish that found no responders (no stream, or JetStream not up). */
export function noResponders(err: unknown): boolean {
  for (let e = err, i = 0; e !== undefined && e !== null && i < 5; e = (e as { cause?: unknown }).cause, i++) if (e instanceof NoRespondersError) return true;
  return false;
}

/** The bucket is not there (a server that came back on a fresh store): it has to be made again. */
export function bucketMissing(err: unknown): boolean {
  return noResponders(err) || (err instanceof JetStreamApiError && err.code === JetStreamApiCodes.StreamNotFound);
}

/** An error as one short line for a log (expected failures need no stack). */
export { errText } from '../ratelog.ts';
