/**
 * After every reconnect, makes what a route node needs on the bus again (its
 * streams and buckets): a server that came back on a fresh store has none of
 * them, and agents, sinks and the node itself would wait for them for good.
 * Existing ones are left as they are.
 */
import type { NatsConnection } from '@nats-io/transport-node';
import type { Names } from '../../schemas/subjects.ts';
import { Registry } from '../registry/registry.ts';
import { RouteStore } from '../registry/route-store.ts';
import { openBucket } from '../nats/buckets.ts';
import { retry } from '../lib/retry.ts';
import { CheckpointStore } from '../cluster/checkpoints.ts';
import { errText } from '../lib/ratelog.ts';
import type { Logger } from '../lib/log.ts';
import { SELF_BUCKET_MAX_AGE_MS } from './effective-registry.ts';

/** Runs until the connection closes or `isClosed()`; `onStart` is the node's own (its streams). */
export async function followConnection(nc: NatsConnection, names: Names, onStart: ((nc: NatsConnection, names: Names) => Promise<void>) | undefined, isClosed: () => boolean, log: Logger): Promise<void> {
  try {
    for await (const s of nc.status()) {
      if (isClosed()) break;
      if (s.type !== 'reconnect') continue;
      const ensure = async (): Promise<void> => {
        await onStart?.(nc, names);
        await Registry.open(nc, names);
        await RouteStore.open(nc, names);
        await CheckpointStore.open(nc, names.prefix);
        await openBucket(nc, names.selfRegBucket, 1, { ttlMs: SELF_BUCKET_MAX_AGE_MS });
      };
      // JetStream may answer only seconds after the connection (a server recovering its store, a leader election).
      await retry(ensure, { attempts: 20, minMs: 250, maxMs: 5000, retryIf: () => !isClosed() }).catch((err: unknown) => {
        if (!isClosed()) log.warn({ err: errText(err) }, 'streams and buckets could not be checked after the reconnect; the next reconnect tries again');
      });
    }
  } catch (err) {
    if (!isClosed()) log.warn({ err: errText(err) }, 'connection status watch ended');
  }
}
