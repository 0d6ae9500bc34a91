/**
 * What a route node reads to restore routes: every route's last published
 * state and checkpoint in one pass at start, a partition's checkpoints in
 * bulk when it is taken over (its handover record, else its route
 * checkpoints), and one route's at a time when nothing was read ahead.
 */
import type { RouteState } from '../../schemas/messages.ts';
import { routeKeyParts } from '../registry/registry.ts';
import { RouteStore } from '../registry/route-store.ts';
import { watchBucket } from '../nats/buckets.ts';
import { retry } from '../lib/retry.ts';
import { Limiter, pool } from '../lib/pool.ts';
import { clusterNames } from '../cluster/names.ts';
import { CheckpointStore, type CheckpointRecord, type StoredRecord } from '../cluster/checkpoints.ts';
import { errField } from '../lib/ratelog.ts';
import type { Logger } from '../lib/log.ts';
import type { RegistryWatchEntry } from './effective-registry.ts';

/** What was read of one route to restore it. */
export interface RestoreRead {
  /** Its last published state and that state's routes-bucket revision. */
  last: { state: RouteState; revision: number } | undefined;
  cp: CheckpointRecord | undefined;
  /** The routes-bucket revision stored with the checkpoint (when the published state was not read). */
  rev?: number;
}

export interface RestoreReaderOptions {
  store: RouteStore;
  checkpoints: CheckpointStore;
  prefix: string;
  log: Logger;
  isClosed: () => boolean;
}

export class RestoreReader {
  private readonly o: RestoreReaderOptions;
  /** Last route states and checkpoints read in bulk at start (only while starting). */
  private preloaded: Map<string, { state: RouteState; revision: number }> | undefined;
  private preloadedCheckpoints: Map<string, CheckpointRecord> | undefined;
  /** Restore reads done in bulk for a partition being taken over. */
  private readonly prefetched = new Map<string, RestoreRead>();
  /** One-pass checkpoint reads of partitions being taken over, a few at a time. */
  private readonly partitionReads = new Limiter(PARTITION_READS);

  constructor(o: RestoreReaderOptions) {
    this.o = o;
  }

  /** Reads every route's last published state and checkpoint, so that loading many routes at start costs no read per route. */
  async preload(): Promise<void> {
    // Read in functions of their own: a map captured by a closure here would share this
    // function's context with callbacks that live as long as the node.
    this.preloaded = await this.readLastStates();
    this.preloadedCheckpoints = await this.readAllCheckpoints();
  }

  /** Start is over: routes are read when they are restored. */
  endPreload(): void {
    this.preloaded = undefined;
    this.preloadedCheckpoints = undefined;
  }

  /** What was read ahead for a route (at start, or in its partition's bulk read); undefined: it must be read now (`read`). */
  take(key: string): RestoreRead | undefined {
    const pre = this.prefetched.get(key);
    if (pre) {
      this.prefetched.delete(key);
      return pre;
    }
    if (this.preloaded) return { last: this.preloaded.get(key), cp: this.preloadedCheckpoints?.get(key) };
    return undefined;
  }

  /** Reads one route's published state and checkpoint, with retries; throws when they fail. */
  async read(modid: number, cmdid: number, partition: number, key: string): Promise<RestoreRead> {
    const [last, cp] = await retry(() => Promise.all([this.o.store.get(modid, cmdid), this.o.checkpoints.get(partition, key)]), { attempts: 3, minMs: 50, retryIf: () => !this.o.isClosed() });
    return { last, cp };
  }

  /**
   * Restores one partition's routes from their checkpoints, read in bulk
   * (`readCheckpoints`); a route whose checkpoint carries the routes-bucket
   * revision it goes with needs nothing more. The others (no checkpoint, an
   * older record, a partition lost on a conflict with such a revision
   * (`verify`), every route of a small partition without a handover) read
   * their last published state, and their checkpoint when the bulk read
   * could not tell that there is none, in parallel. The entries are then
   * applied (`apply`) in order, each finding its reads with `take`.
   */
  async restorePartition(p: number, entries: RegistryWatchEntry[], verify: boolean, apply: (e: RegistryWatchEntry) => Promise<void>): Promise<void> {
    let cps: Map<string, Uint8Array> | undefined;
    let complete = false;
    if (!verify) {
      try {
        ({ cps, complete } = await this.partitionReads.run(() => this.readCheckpoints(p, entries.map((e) => e.key))));
      } catch (err) {
        this.o.log.warn({ err: errField(this.o.log, err), partition: p }, 'partition checkpoints read failed; reading route by route');
      }
    }
    // In slices, letting timers run between them (lease renewals: a long restore must not let the lease
    // lapse). Each slice's checkpoints are decoded just before its routes are restored: decoded all at
    // once, a partition's checkpoints would outlive many young-generation collections, each copying them.
    for (let i = 0; i < entries.length; i += RESTORE_SLICE) {
      const slice = entries.slice(i, i + RESTORE_SLICE);
      const reads: Array<{ e: RegistryWatchEntry; cp: CheckpointRecord | undefined }> = [];
      for (const e of slice) {
        const raw = cps?.get(e.key);
        const cp = raw === undefined ? undefined : CheckpointStore.decodeRecord(raw);
        if (cp?.rev !== undefined) this.prefetched.set(e.key, { last: undefined, cp, rev: cp.rev });
        else reads.push({ e, cp });
      }
      // A bounded number in flight: thousands of requests at once time out on a busy server.
      await pool(reads, RESTORE_READS, async ({ e, cp }) => {
        const parts = routeKeyParts(e.key)!;
        try {
          const [last, c] = await Promise.all([this.o.store.get(parts.modid, parts.cmdid), cp !== undefined || complete ? cp : this.o.checkpoints.get(p, e.key)]);
          this.prefetched.set(e.key, { last, cp: c });
        } catch {
          // read again, with retries, when the entry is applied
        }
      });
      await Promise.all(slice.map((e) => apply(e)));
      for (const e of slice) this.prefetched.delete(e.key);
      if (i + RESTORE_SLICE < entries.length) await new Promise<void>((r) => setImmediate(r));
    }
  }

  /**
   * A partition's checkpoints in bulk, by route key. Its handover (see
   * CheckpointStore.putHandover) when no route checkpoint was stored after
   * it; otherwise, or with no handover and many routes, its route
   * checkpoints (in one pass when it has many routes, one read each when few),
   * the handover's record kept for a route where it is the newer.
   * `complete`: a route missing from them has no checkpoint.
   */
  private async readCheckpoints(p: number, keys: readonly string[]): Promise<{ cps: Map<string, Uint8Array> | undefined; complete: boolean }> {
    const checkpoints = this.o.checkpoints;
    const h = await checkpoints.readHandover(p);
    if (h && !(await checkpoints.storedAfter(p, h.seq))) return { cps: h.records, complete: false };
    if (keys.length < BULK_RESTORE_MIN) {
      if (!h) return { cps: undefined, complete: false };
      const cps = new Map<string, Uint8Array>(h.records);
      await pool(keys, RESTORE_READS, async (k) => {
        const r = await checkpoints.getStored(p, k);
        if (r) keepNewer(cps, h.seq, k, r);
      });
      return { cps, complete: true };
    }
    const stored = await checkpoints.readPartition(p);
    const cps = new Map<string, Uint8Array>(h?.records);
    for (const [k, r] of stored) keepNewer(cps, h?.seq, k, r);
    return { cps, complete: true };
  }

  /** The last published state of every route, read in one pass. */
  private async readLastStates(): Promise<Map<string, { state: RouteState; revision: number }>> {
    const lastStates = new Map<string, { state: RouteState; revision: number }>();
    const routesWatch = await watchBucket(this.o.store.kv, (e) => {
      const st = RouteStore.decodeEntry(e);
      if (st) lastStates.set(e.key, { state: st, revision: e.revision });
      else lastStates.delete(e.key);
    });
    await routesWatch.initialized;
    routesWatch.stop();
    return lastStates;
  }

  /** Every route's checkpoint, read in one pass. */
  private async readAllCheckpoints(): Promise<Map<string, CheckpointRecord>> {
    const cps = new Map<string, CheckpointRecord>();
    const cn = clusterNames(this.o.prefix);
    const cpWatch = await watchBucket(this.o.checkpoints.kv, (e) => {
      const k = cn.checkpointRoute(e.key);
      if (!k) return;
      const cp = CheckpointStore.decodeEntry(e);
      if (cp) cps.set(k.routeKey, cp);
      else cps.delete(k.routeKey);
    });
    await cpWatch.initialized;
    cpWatch.stop();
    return cps;
  }
}

/** Routes in a partition from which a takeover reads the partition's checkpoints in one pass. */
const BULK_RESTORE_MIN = 32;
/** Routes restored in one go before timers get a turn. */
const RESTORE_SLICE = 128;
/** Restore reads in flight per partition being taken over. */
const RESTORE_READS = 16;
/**
 * Partitions whose checkpoints are read at once: each read is a watch, and
 * nats-server 2.9 left most of twenty watches started together stalled
 * halfway (five at once read in 0.8 s).
 */
const PARTITION_READS = 4;

/**
 * Puts route checkpoint `r` of route `key` in `cps` unless `cps` holds the
 * route's record from the handover stored at `handoverSeq` and that handover
 * is the newer (stream sequences).
 */
function keepNewer(cps: Map<string, Uint8Array>, handoverSeq: number | undefined, key: string, r: StoredRecord): void {
  if (handoverSeq === undefined || r.seq > handoverSeq || !cps.has(key)) cps.set(key, r.value);
}
