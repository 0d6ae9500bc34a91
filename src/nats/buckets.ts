/**
 * JetStream KV buckets, generically: open (creating when missing, replicas as
 * asked), bind, read once, watch, and the errors a bucket operation meets.
 */
import { Kvm, type KV, type KvEntry } from '@nats-io/kv';
import { NoRespondersError, type NatsConnection } from '@nats-io/transport-node';
import { JetStreamApiCodes, JetStreamApiError, StorageType, jetstream, jetstreamManager } from '@nats-io/jetstream';
import { RegistryError, JetStreamDisabledError } from '../lib/errors.ts';
import { silentLogger, type Logger } from '../lib/log.ts';
import { retry } from '../lib/retry.ts';
import { infoOrUndefined, placementPending, replicasFor, setReplicas, type Replicas } from './streams.ts';

export interface OpenBucketOptions {
  /** Replicas of the bucket's stream; default `auto` (3 on a cluster, 1 on a single server). */
  replicas?: Replicas;
  /** The bucket's max_age, ms (nats-server 2.9 has no per-key TTL); 0 or absent = none. */
  ttlMs?: number;
  /**
   * How long each operation on the bucket waits for its answer, ms (default:
   * the client's, 5 s). A short one lets a write cut off with its server
   * fail soon and go again on the next server; such a write may still have
   * been applied, which its caller must tell from a conflict (read back).
   */
  timeoutMs?: number;
  log?: Logger;
}

/** A KV manager whose operations wait `timeoutMs` at most (the client's default when absent). */
function kvManager(nc: NatsConnection, timeoutMs: number | undefined): Kvm {
  return new Kvm(timeoutMs === undefined ? nc : jetstream(nc, { timeout: timeoutMs }));
}

/** The server a connection is on, as a URL. */
const serverUrl = (nc: NatsConnection): string => `nats://${nc.getServer()}`;

/**
 * Opens (creating when missing) a KV bucket. Safe to call from many processes
 * at once. An existing bucket with another replica count is brought to the
 * one asked for, when the servers can hold it.
 */
export async function openBucket(nc: NatsConnection, bucket: string, history = 5, opts: OpenBucketOptions = {}): Promise<KV> {
  const kvm = kvManager(nc, opts.timeoutMs);
  const replicas = replicasFor(nc, opts.replicas);
  let kv: KV;
  try {
    // On a cluster still forming, the replicas may not be placeable yet: wait for it (a while).
    kv = await retry(() => kvm.create(bucket, { history, storage: StorageType.File, replicas, ...(opts.ttlMs ? { ttl: opts.ttlMs } : {}) }), { attempts: 100, minMs: 50, maxMs: 250, randomize: true, retryIf: placementPending() });
  } catch (err) {
    // A concurrent creator with another config, or a server that refuses: try to bind to what exists.
    const bound = await bindBucket(nc, bucket, opts.timeoutMs).catch(() => undefined);
    if (bound === undefined && JetStreamDisabledError.matches(err)) throw new JetStreamDisabledError(serverUrl(nc), { cause: err });
    if (bound === undefined) throw new RegistryError(`cannot open KV bucket ${bucket}: ${(err as Error).message}`, { cause: err });
    kv = bound;
  }
  const status = await kv.status();
  if (status.replicas !== replicas) {
    const jsm = await jetstreamManager(nc);
    await setReplicas(jsm, await jsm.streams.info(status.streamInfo.config.name), replicas, (opts.log ?? silentLogger()).child({ mod: 'registry', bucket }));
  }
  return kv;
}

/**
 * Binds to an existing KV bucket without creating it; undefined when there is
 * no such bucket. Reads go through direct get when the bucket allows it (every
 * bucket this project creates does), never through the stream's MSG.GET API
 * by default: nats-server 2.9.10 crashes (nil dereference in jsMsgGetRequest)
 * on a MSG.GET that meets a stream still being created, which is what a reader
 * starting next to a node that creates the bucket would send.
 */
export async function bindBucket(nc: NatsConnection, bucket: string, timeoutMs?: number): Promise<KV | undefined> {
  const jsm = await jetstreamManager(nc).catch((err: unknown) => {
    throw JetStreamDisabledError.matches(err) ? new JetStreamDisabledError(serverUrl(nc), { cause: err }) : err;
  });
  const info = await infoOrUndefined(jsm, `KV_${bucket}`);
  if (info === undefined) return undefined;
  return kvManager(nc, timeoutMs).open(bucket, { allow_direct: info.config.allow_direct === true });
}

/** Every key's latest entry (deletions included), read once; none for an absent bucket. */
export async function readBucket(kv: KV | undefined): Promise<KvEntry[]> {
  if (!kv) return [];
  const out = new Map<string, KvEntry>();
  const w = await watchBucket(kv, (e) => {
    out.set(e.key, e);
  }, { initTimeoutMs: 5000 });
  await w.initialized;
  w.stop();
  return [...out.values()];
}

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


/** A compare-and-set write lost: the key is no longer at the revision the write expected. */
export function isConflict(err: unknown): boolean {
  return (
    err instanceof JetStreamApiError &&
    (err.code === JetStreamApiCodes.StreamWrongLastSequence || err.code === JetStreamApiCodes.StreamWrongLastSequenceUnknown)
  );
}

export interface BucketWatch {
  /** Resolves once every key that existed when the watch started has been delivered (or after `initTimeoutMs`). */
  initialized: Promise<void>;
  stop(): void;
}

/**
 * Watches every key of a bucket (last values, then updates) and tells when
 * the initial values are all in, by the watcher's own marker: each entry
 * carries how many messages are still pending for the watch (`delta`), and
 * the last of the initial values is the first one with none left. An empty
 * bucket has no initial values.
 */
export async function watchBucket(
  kv: KV,
  onEntry: (e: KvEntry) => void | Promise<void>,
  opts: { initTimeoutMs?: number; onError?: (err: unknown) => void; onEnd?: () => void } = {},
): Promise<BucketWatch> {
  const watch = await kv.watch({ key: '>' });
  let resolveInit!: () => void;
  const initialized = new Promise<void>((r) => (resolveInit = r));
  let stopped = false;
  void (async () => {
    for await (const e of watch) {
      await onEntry(e);
      if (e.delta === 0) resolveInit();
    }
    // The watch's consumer went away (not stopped here): nothing more will come.
    if (!stopped) opts.onEnd?.();
  })().catch((err: unknown) => opts.onError?.(err));
  // Nothing stored (the watch then delivers no initial value at all).
  try {
    if ((await kv.status()).values === 0) resolveInit();
  } catch (err) {
    stopped = true;
    watch.stop();
    throw err;
  }
  const timer = setTimeout(resolveInit, opts.initTimeoutMs ?? 30_000);
  timer.unref?.();
  void initialized.then(() => clearTimeout(timer));
  return {
    initialized,
    stop: () => {
      stopped = true;
      watch.stop();
    },
  };
}
