/**
 * Route checkpoints (`<prefix>_checkpoints`, key
 * `<partition>.<modid>.<cmdid>`): the full state of each route actor
 * (`RouteActor.checkpoint()`: counters, windows, ejection deadlines,
 * unpublished events) and the routes-bucket revision of the state it goes
 * with, which a new owner resumes exactly at takeover. Written after each
 * fenced route-state write (so a stale owner, whose write fails, never
 * writes one) and for every owned route on a graceful stop or handover.
 *
 * The partition leads the key so that a new owner reads all the
 * checkpoints of a partition in one pass (a watch filtered on
 * `<partition>.>`) rather than one read per route; with the revision in the
 * record it needs no read of the routes bucket either.
 */
import type { KV, KvEntry } from '@nats-io/kv';
import { jetstreamManager, type JetStreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import { parseCheckpoint, type RouteCheckpoint } from '../../actors/route.ts';
import { encode, tryDecode } from '../codec.ts';
import { openTtlBucket } from './kv.ts';
import { clusterNames, type ClusterNames } from './names.ts';

export interface CheckpointRecord {
  v: 1;
  /** The route actor's state right after its last published version. */
  checkpoint: RouteCheckpoint;
  /** Wall clock of the write, ms. */
  ts: number;
  /** Revision of the route's state in the routes bucket when the checkpoint was taken (0: none yet); absent in older records. */
  rev?: number;
}

export class CheckpointStore {
  readonly kv: KV;
  private readonly jsm: JetStreamManager;
  private readonly names: ClusterNames;
  private readonly stream: string;
  private readonly subjectPrefix: string;

  private constructor(kv: KV, jsm: JetStreamManager, names: ClusterNames, stream: string, bucket: string) {
    this.kv = kv;
    this.jsm = jsm;
    this.names = names;
    this.stream = stream;
    this.subjectPrefix = `$KV.${bucket}.`;
  }

  /** Opens (creating when missing) the checkpoints bucket of `prefix`. */
  static async open(nc: NatsConnection, prefix: string): Promise<CheckpointStore> {
    const names = clusterNames(prefix);
    const kv = await openTtlBucket(nc, names.checkpointsBucket, 0);
    const status = await kv.status();
    return new CheckpointStore(kv, await jetstreamManager(nc), names, status.streamInfo.config.name, names.checkpointsBucket);
  }

  static decodeEntry(e: Pick<KvEntry, 'value' | 'operation'>): CheckpointRecord | undefined {
    if (e.operation !== 'PUT') return undefined;
    const d = tryDecode(e.value);
    if (!d.ok || typeof d.value !== 'object' || d.value === null) return undefined;
    const r = d.value as Record<string, unknown>;
    if (r['v'] !== 1 || typeof r['ts'] !== 'number') return undefined;
    const c = parseCheckpoint(r['checkpoint']);
    if (!c.ok) return undefined;
    const out: CheckpointRecord = { v: 1, checkpoint: c.value, ts: r['ts'] };
    const rev = r['rev'];
    if (typeof rev === 'number' && Number.isSafeInteger(rev) && rev >= 0) out.rev = rev;
    return out;
  }

  async get(partition: number, routeKey: string): Promise<CheckpointRecord | undefined> {
    const e = await this.kv.get(this.names.checkpointKey(partition, routeKey));
    return e ? CheckpointStore.decodeEntry(e) : undefined;
  }

  /** A checkpoint record as stored: the same inputs give the same bytes. */
  static encodeRecord(checkpoint: RouteCheckpoint, ts: number, rev: number | undefined): Uint8Array {
    const r: CheckpointRecord = { v: 1, checkpoint, ts };
    if (rev !== undefined) r.rev = rev;
    return encode(r);
  }

  /** Stores a record encoded by `encodeRecord`. */
  async putEncoded(partition: number, routeKey: string, record: Uint8Array): Promise<void> {
    await this.kv.put(this.names.checkpointKey(partition, routeKey), record);
  }

  /**
   * Every checkpoint record of one partition as stored (`decodeRecord` reads
   * one), by route key, in one pass: the number of keys under `<partition>.>`
   * from the stream, then a watch on that filter until its last initial
   * value. Rejects when that value has not come within `timeoutMs`: a part
   * of a partition's checkpoints is not what the caller asked for.
   */
  async readPartition(partition: number, timeoutMs = 10_000): Promise<Map<string, Uint8Array>> {
    const out = new Map<string, Uint8Array>();
    const filter = `${partition}.>`;
    const info = await this.jsm.streams.info(this.stream, { subjects_filter: `${this.subjectPrefix}${filter}` });
    if (Object.keys(info.state.subjects ?? {}).length === 0) return out;
    const w = await this.kv.watch({ key: filter });
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      w.stop();
    }, timeoutMs);
    let complete = false;
    try {
      for await (const e of w) {
        const k = this.names.checkpointRoute(e.key);
        if (k && e.operation === 'PUT') out.set(k.routeKey, e.value);
        else if (k) out.delete(k.routeKey);
        if (e.delta === 0) {
          complete = true;
          break;
        }
      }
    } finally {
      clearTimeout(timer);
      w.stop();
    }
    if (!complete) throw new Error(`checkpoints of partition ${partition}: ${timedOut ? `not all read within ${timeoutMs} ms` : 'the watch ended early'} (${out.size} read)`);
    return out;
  }

  /** A record as `readPartition` gives it, decoded and checked; undefined when it is not a valid one. */
  static decodeRecord(value: Uint8Array): CheckpointRecord | undefined {
    return CheckpointStore.decodeEntry({ operation: 'PUT', value });
  }
}
