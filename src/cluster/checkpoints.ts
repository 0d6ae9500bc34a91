/**
 * Route checkpoints (`<prefix>_checkpoints`): what a new owner restores a
 * route actor from at takeover. Written after each fenced route-state write
 * (so a stale owner, whose write fails, never writes one) and for every
 * owned route on a graceful stop.
 */
import type { KV, KvEntry } from '@nats-io/kv';
import type { NatsConnection } from '@nats-io/transport-node';
import { validateRouteState, type RouteState } from '../../schemas/messages.ts';
import { encode, tryDecode } from '../codec.ts';
import { openTtlBucket } from './kv.ts';

export interface CheckpointRecord {
  v: 1;
  /** The route as last published by its owner. */
  state: RouteState;
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
    const s = validateRouteState(r['state']);
    return s.ok ? { v: 1, state: s.value, ts: r['ts'] } : undefined;
  }

  async get(key: string): Promise<CheckpointRecord | undefined> {
    const e = await this.kv.get(key);
    return e ? CheckpointStore.decodeEntry(e) : undefined;
  }

  async put(key: string, state: RouteState, ts: number): Promise<void> {
    await this.kv.put(key, encode({ v: 1, state, ts } satisfies CheckpointRecord));
  }
}
