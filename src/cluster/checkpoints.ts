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
 *
 * A graceful handover stores one partition's checkpoints together instead
 * (`putHandover`): every route's record in a few large parts
 * (`<partition>.handover-<i>`), then the entry naming them
 * (`<partition>.handover`), which makes them valid. A new owner reads that
 * entry and its parts (a few messages instead of one per route) and asks the
 * stream whether any route checkpoint of the partition was stored after the
 * entry (`storedAfter`): if none, the handover is the latest word on every
 * route; otherwise (the owner after the handover stored some, then stopped
 * without a handover of its own) the newer route checkpoints win, route by
 * route, by stream sequence.
 *
 * Records are written in version 2: the checkpoint with its hosts as
 * columns (each field's name once, then a row of values per host; a field a
 * host does not have is nil in its row) and only the parameters that differ
 * from the profile's defaults. That is 40 % of the bytes of version 1 (each
 * host a map) for a route of 10 hosts, and quicker to decode; a handover
 * moves tens of thousands of them. Version 1 records are still read.
 */
import type { KV, KvEntry } from '@nats-io/kv';
import { jetstreamManager, type JetStreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import { parseCheckpoint, type HostCheckpoint, type RouteCheckpoint } from '../../actors/route.ts';
import { resolveParams, type RouteParams } from '../../actors/params.ts';
import type { Profile } from '../../schemas/messages.ts';
import { encode } from '../../schemas/codec.ts';
import { decodeCheckpointRecord, decodeHandoverEntry, decodeHandoverPart } from '../../schemas/records.ts';
import type { CheckpointRecordV2, HandoverEntry } from '../../schemas/cluster-records.ts';
import { openTtlBucket } from '../nats/buckets.ts';
import { clusterNames, type ClusterNames } from './names.ts';
import { randomBytes } from 'node:crypto';

/** A stored checkpoint, decoded. */
export interface CheckpointRecord {
  /** The route actor's state when its last published version was stored (with any change not yet published). */
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

  /** A checkpoint entry's record (version 1 or 2, the contract's CheckpointRecord) with its checkpoint checked; undefined for a delete or anything not valid. */
  static decodeEntry(e: Pick<KvEntry, 'value' | 'operation'>): CheckpointRecord | undefined {
    if (e.operation !== 'PUT') return undefined;
    const d = decodeCheckpointRecord(e.value);
    if (!d.ok) return undefined;
    const r = d.value;
    const c = parseCheckpoint(r.v === 2 ? unpackCheckpoint((r as CheckpointRecordV2).checkpoint) : r.checkpoint);
    if (!c.ok) return undefined;
    const out: CheckpointRecord = { checkpoint: c.value, ts: r.ts };
    if (r.rev !== undefined) out.rev = r.rev;
    return out;
  }

  async get(partition: number, routeKey: string): Promise<CheckpointRecord | undefined> {
    const e = await this.kv.get(this.names.checkpointKey(partition, routeKey));
    return e ? CheckpointStore.decodeEntry(e) : undefined;
  }

  /** A route's checkpoint record as stored, with its stream sequence (what `readPartition` gives, for one route). */
  async getStored(partition: number, routeKey: string): Promise<StoredRecord | undefined> {
    const e = await this.kv.get(this.names.checkpointKey(partition, routeKey));
    return e && e.operation === 'PUT' ? { value: e.value, seq: e.revision } : undefined;
  }

  /** A checkpoint record as stored (version 2): the same inputs give the same bytes. */
  static encodeRecord(checkpoint: RouteCheckpoint, ts: number, rev: number | undefined): Uint8Array {
    const r: { v: 2; checkpoint: PackedCheckpoint; ts: number; rev?: number } = { v: 2, checkpoint: packCheckpoint(checkpoint), ts };
    if (rev !== undefined) r.rev = rev;
    return encode(r satisfies CheckpointRecordV2);
  }

  /**
   * Stores a partition's handover (see the top of this file): `records`
   * (route key → `encodeRecord` bytes) in parts of at most `partBytes`,
   * then the entry that names them.
   */
  async putHandover(partition: number, records: ReadonlyArray<readonly [string, Uint8Array]>, node: string, partBytes = HANDOVER_PART_BYTES): Promise<void> {
    const id = randomBytes(8).toString('hex');
    const parts: Array<Array<readonly [string, Uint8Array]>> = [];
    let part: Array<readonly [string, Uint8Array]> = [];
    let bytes = 0;
    for (const r of records) {
      const size = r[0].length + r[1].length + 16;
      if (part.length > 0 && bytes + size > partBytes) {
        parts.push(part);
        part = [];
        bytes = 0;
      }
      part.push(r);
      bytes += size;
    }
    if (part.length > 0) parts.push(part);
    await Promise.all(parts.map((p, i) => this.kv.put(this.names.handoverPartKey(partition, i), encode({ v: 1, id, records: p }))));
    const entry: HandoverEntry = { v: 1, id, node, ts: Date.now(), parts: parts.length, routes: records.length };
    await this.kv.put(this.names.handoverKey(partition), encode(entry));
  }

  /**
   * A partition's latest handover: its records by route key, and the stream
   * sequence of its entry; undefined when there is none, or a part is
   * missing or from another handover.
   */
  async readHandover(partition: number): Promise<{ records: Map<string, Uint8Array>; seq: number } | undefined> {
    const e = await this.kv.get(this.names.handoverKey(partition));
    if (!e || e.operation !== 'PUT') return undefined;
    const d = decodeHandoverEntry(e.value);
    if (!d.ok) return undefined;
    const entry = d.value;
    const parts = await Promise.all(Array.from({ length: entry.parts }, (_, i) => this.kv.get(this.names.handoverPartKey(partition, i))));
    const records = new Map<string, Uint8Array>();
    for (const pe of parts) {
      if (!pe || pe.operation !== 'PUT') return undefined;
      const pd = decodeHandoverPart(pe.value);
      if (!pd.ok || pd.value.id !== entry.id) return undefined;
      for (const r of pd.value.records) records.set(r[0], r[1]);
    }
    return { records, seq: e.revision };
  }

  /**
   * Whether a route checkpoint of `partition` was stored after stream
   * sequence `seq`: one direct get of the stream's next message on the
   * partition's route keys. (Direct, as every KV read here: a STREAM.MSG.GET
   * also crashes nats-server 2.9.10 on a stream being created, and in tests it
   * left a watch started meanwhile on another bucket without its values.)
   */
  async storedAfter(partition: number, seq: number): Promise<boolean> {
    const next = await this.jsm.direct.getMessage(this.stream, { seq: seq + 1, next_by_subj: `${this.subjectPrefix}${this.names.checkpointFilter(partition)}` });
    return next !== null;
  }

  /** Stores a record encoded by `encodeRecord`. */
  async putEncoded(partition: number, routeKey: string, record: Uint8Array): Promise<void> {
    await this.kv.put(this.names.checkpointKey(partition, routeKey), record);
  }

  /**
   * Every route checkpoint record of one partition as stored (`decodeRecord`
   * reads one) with its stream sequence, by route key, in one pass: the
   * number of route keys of the partition from the stream, then a watch on
   * them until its last initial value. Rejects when that value has not come
   * within `timeoutMs`: a part of a partition's checkpoints is not what the
   * caller asked for.
   */
  async readPartition(partition: number, timeoutMs = 10_000): Promise<Map<string, StoredRecord>> {
    const out = new Map<string, StoredRecord>();
    const filter = this.names.checkpointFilter(partition);
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
        if (k && e.operation === 'PUT') out.set(k.routeKey, { value: e.value, seq: e.revision });
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

/** A route checkpoint record as stored, and its stream sequence. */
export interface StoredRecord {
  value: Uint8Array;
  seq: number;
}

/** Handover parts stay well under nats-server's default max_payload (1 MiB). */
const HANDOVER_PART_BYTES = 256 * 1024;

/** A checkpoint as version 2 stores it (see the top of this file). */
type PackedCheckpoint = Omit<RouteCheckpoint, 'hosts' | 'params'> & {
  /** Only the parameters that differ from the profile's defaults. */
  params: Record<string, number>;
  hosts: { keys: string[]; rows: unknown[][] };
};

const defaultsByProfile = new Map<Profile, Readonly<Record<string, number>>>();

/** The profile's parameters with no override (what a version 2 record leaves out). */
function profileDefaults(profile: Profile): Readonly<Record<string, number>> {
  let d = defaultsByProfile.get(profile);
  if (d === undefined) defaultsByProfile.set(profile, (d = (resolveParams(profile) as { ok: true; params: RouteParams }).params as unknown as Record<string, number>));
  return d;
}

function packCheckpoint(c: RouteCheckpoint): PackedCheckpoint {
  const { hosts, params, ...rest } = c;
  const defaults = profileDefaults(c.profile);
  const changed: Record<string, number> = {};
  for (const k in params) if (params[k] !== defaults[k]) changed[k] = params[k]!;
  return { ...rest, params: changed, hosts: packHosts(hosts) };
}

function packHosts(hosts: readonly HostCheckpoint[]): { keys: string[]; rows: unknown[][] } {
  const keys: string[] = [];
  const index = new Map<string, number>();
  for (const h of hosts) {
    for (const k in h) {
      if (index.has(k)) continue;
      index.set(k, keys.length);
      keys.push(k);
    }
  }
  const rows = hosts.map((h) => {
    const row = new Array<unknown>(keys.length).fill(null);
    const r = h as unknown as Record<string, unknown>;
    for (const k in r) row[index.get(k)!] = r[k];
    return row;
  });
  return { keys, rows };
}

/** A version 2 checkpoint (its layout checked by the contract's validator) back in RouteCheckpoint's shape; parseCheckpoint then checks it. */
function unpackCheckpoint(c: CheckpointRecordV2['checkpoint']): unknown {
  const names = c.hosts.keys;
  const template = hostTemplate(names);
  const hosts: Array<Record<string, unknown>> = [];
  for (const row of c.hosts.rows) {
    const h = { ...template };
    for (let i = 0; i < names.length; i++) {
      const v: unknown = row[i];
      h[names[i]!] = v === null ? undefined : v;
    }
    hosts.push(h);
  }
  return { ...c, params: { ...profileDefaults(c.profile), ...c.params }, hosts };
}

const hostTemplates = new Map<string, Readonly<Record<string, unknown>>>();

/**
 * An object with these fields, which a host is copied from
 * before its values are set: an object given thirty fields one by one under
 * computed names turns into a slow dictionary (three times the time, ten
 * times the garbage of a copy), and a handover restores hundreds of
 * thousands of hosts. JSON.parse builds the template as a plain object of
 * fixed shape; the same few field lists come over and over.
 */
function hostTemplate(names: readonly string[]): Readonly<Record<string, unknown>> {
  const last = lastTemplate;
  if (last !== undefined && last.names.length === names.length && last.names.every((k, i) => k === names[i])) return last.template;
  const sig = names.join('\u0000');
  let t = hostTemplates.get(sig);
  if (t === undefined) {
    t = JSON.parse(`{${names.map((k) => `${JSON.stringify(k)}:null`).join(',')}}`) as Record<string, unknown>;
    if (hostTemplates.size < 64) hostTemplates.set(sig, t);
  }
  lastTemplate = { names: [...names], template: t };
  return t;
}

/** The template asked for last, with its field names (records in a row have the same ones). */
let lastTemplate: { names: readonly string[]; template: Readonly<Record<string, unknown>> } | undefined;
