/**
 * Route checkpoints (`<prefix>_checkpoints`): the full state of each route
 * actor (`RouteActor.checkpoint()`: counters, windows, ejection deadlines,
 * unpublished events), which a new owner resumes exactly at takeover.
 * Written after each fenced route-state write (so a stale owner, whose
 * write fails, never writes one) and for every owned route on a graceful
 * stop or handover.
 */
import type { KV, KvEntry } from '@nats-io/kv';
import type { NatsConnection } from '@nats-io/transport-node';
import { parseCheckpoint, type RouteCheckpoint } from '../../actors/route.ts';
import { encode, tryDecode } from '../codec.ts';
import { openTtlBucket } from './kv.ts';

export interface CheckpointRecord {
  v: 1;
  /** The route actor's state right after its last published version. */
  checkpoint: RouteCheckpoint;
  /** Wall clock of the write, ms. */
  ts: number;
}

export class CheckpointStore {
  readonly kv: KV;

  private constructor(kv: KV) {
    this.kv = kv;
  }

  static async open(nc: NatsConnection, bucket: string): Promise<CheckpointStore> {
    return new CheckpointStore(await openTtlBucket(nc, bucket, 0));
  }

  static decodeEntry(e: Pick<KvEntry, 'value' | 'operation'>): CheckpointRecord | undefined {
    if (e.operation !== 'PUT') return undefined;
    const d = tryDecode(e.value);
    if (!d.ok || typeof d.value !== 'object' || d.value === null) return undefined;
    const r = d.value as Record<string, unknown>;
    if (r['v'] !== 1 || typeof r['ts'] !== 'number') return undefined;
    const c = parseCheckpoint(r['checkpoint']);
    return c.ok ? { v: 1, checkpoint: c.value, ts: r['ts'] } : undefined;
  }

  async get(key: string): Promise<CheckpointRecord | undefined> {
    const e = await this.kv.get(key);
    return e ? CheckpointStore.decodeEntry(e) : undefined;
  }

  async put(key: string, checkpoint: RouteCheckpoint, ts: number): Promise<void> {
    await this.kv.put(key, encode({ v: 1, checkpoint, ts } satisfies CheckpointRecord));
  }
}
