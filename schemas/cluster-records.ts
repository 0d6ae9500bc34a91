/**
 * The records route nodes store for one another, as TypeBox schemas beside
 * the wire messages of contract.ts: a partition's lease, a member's
 * heartbeat, a route's checkpoint (versions 1 and 2, both read) and a
 * partition's handover (an entry and its parts). Their
 * buckets and keys are built in src/cluster/names.ts; the validators are
 * records.ts'; `npm run schemas` writes their JSON Schema files with the
 * messages'.
 *
 * This module imports TypeBox and the contract only.
 */
import { Type, type Static } from '@sinclair/typebox';
import { ProfileSchema } from './contract.ts';

const RecordVersion = (v: 1 | 2) => Type.Literal(v, { description: 'record version' });
const WallMs = (description: string) => Type.Number({ description });
const Count = (description: string) => Type.Number({ minimum: 0, description });

// ------------------------------------------------------------------ leases

export const LeaseRecordSchema = Type.Object(
  {
    v: RecordVersion(1),
    node: Type.String({ minLength: 1, description: 'the route node that holds the partition' }),
    ts: WallMs("the holder's wall clock at the write, ms since the Unix epoch (informational)"),
    inc: Type.Optional(
      Type.String({
        description:
          "the holder's incarnation, random per process run: a node that finds its own name and incarnation on a lease it thought lost knows that a write of its own, timed out, was applied after all. Read only when a string",
      }),
    ),
  },
  {
    title: 'LeaseRecord',
    description:
      "The holder of one partition. KV <prefix>_leases key p<partition>, written with compare-and-set on the key's revision; a lease is held while its holder renews it within the lease time (judged by the reader's clock from when it saw the revision).",
  },
);

// ----------------------------------------------------------------- members

const ingestFields = {
  reports: Count('reports ingested since the node started'),
  batches: Count('batches ingested since the node started'),
  pending: Count("batches received and not processed yet (its subscriptions' queues) at the heartbeat"),
  reportsPerSec: Count('reports ingested per second since the previous heartbeat'),
  batchesPerSec: Count('batches ingested per second since the previous heartbeat'),
};
const INGEST = "a route node's report intake as announced in its heartbeat";

export const IngestFiguresSchema = Type.Object(ingestFields, { description: INGEST });

export const MemberRecordSchema = Type.Object(
  {
    v: RecordVersion(1),
    node: Type.String({ minLength: 1, maxLength: 256, description: 'the route node id' }),
    started: WallMs('when the node started, ms since the Unix epoch'),
    partitions: Type.Optional(Type.Array(Type.Integer(), { description: 'the partitions it holds at the heartbeat' })),
    leaving: Type.Optional(Type.Boolean({ description: 'the node is stopping: others stop counting it as a member for ownership' })),
    leaseMs: Type.Optional(Count('its lease time, ms (for lars cluster status); left out by a reader when not such a number')),
    heartbeatMs: Type.Optional(Count('its heartbeat interval, ms (for lars cluster status); left out by a reader when not such a number')),
    ingest: Type.Optional(Type.Object(ingestFields, { description: `${INGEST}; left out by a reader when any figure is not such a number` })),
    ts: WallMs('wall clock at the heartbeat, ms since the Unix epoch'),
  },
  {
    title: 'MemberRecord',
    description:
      "A route node's membership heartbeat. KV <prefix>_members key: the node id with every character other than [A-Za-z0-9_=-] written _<hex code>. A member is live while its last heartbeat was seen within the member TTL by the reader's clock.",
  },
);

// ------------------------------------------------------------- checkpoints

const Rev = () =>
  Type.Optional(
    Type.Integer({
      minimum: 0,
      maximum: Number.MAX_SAFE_INTEGER,
      description: "revision of the route's state in the routes bucket when the checkpoint was taken (0: none yet); read only when such an integer, absent in older records",
    }),
  );
const CheckpointTs = () => WallMs('wall clock of the write, ms since the Unix epoch');
const CHECKPOINT_KEY = 'KV <prefix>_checkpoints key <partition>.<modid>.<cmdid>';

export const CheckpointRecordV1Schema = Type.Object(
  {
    v: RecordVersion(1),
    checkpoint: Type.Object(
      {},
      { description: "the route actor's full state (RouteCheckpoint, actors/checkpoint.ts: hosts as an array of maps, every parameter), checked field by field by the actor's parseCheckpoint" },
    ),
    ts: CheckpointTs(),
    rev: Rev(),
  },
  { title: 'CheckpointRecordV1', description: `A route's checkpoint, as written before version 2 and still read. ${CHECKPOINT_KEY}.` },
);

export const PackedHostsSchema = Type.Object(
  {
    keys: Type.Array(Type.String(), { description: 'the host fields, each name once' }),
    rows: Type.Array(Type.Array(Type.Unknown()), { description: "one row per host, in the route's order: a value per key, nil where the host has no such field" }),
  },
  { description: 'the hosts as columns. Checked in code as well: every row has as many values as there are keys' },
);

export const CheckpointRecordV2Schema = Type.Object(
  {
    v: RecordVersion(2),
    checkpoint: Type.Object(
      {
        profile: ProfileSchema(),
        params: Type.Record(Type.String(), Type.Number(), { description: "only the parameters that differ from the profile's defaults" }),
        hosts: PackedHostsSchema,
      },
      { description: "the route actor's full state (RouteCheckpoint, actors/checkpoint.ts) with its hosts as columns and only the parameters that differ from the profile's defaults; unpacked, it is checked by the actor's parseCheckpoint" },
    ),
    ts: CheckpointTs(),
    rev: Rev(),
  },
  { title: 'CheckpointRecordV2', description: `A route's checkpoint, as route nodes write it. ${CHECKPOINT_KEY}.` },
);

// --------------------------------------------------------------- handovers

export const HandoverEntrySchema = Type.Object(
  {
    v: RecordVersion(1),
    id: Type.String({ description: 'names this handover in its parts' }),
    node: Type.String({ description: 'the node that handed the partition over (informational)' }),
    ts: WallMs('wall clock of the handover, ms since the Unix epoch (informational)'),
    parts: Type.Integer({ minimum: 0, maximum: Number.MAX_SAFE_INTEGER, description: 'how many parts hold its records: keys <partition>.handover-0 .. -<parts - 1>' }),
    routes: Type.Integer({ minimum: 0, description: 'how many route records the parts hold (informational)' }),
  },
  {
    title: 'HandoverEntry',
    description:
      "A partition's graceful handover: every route's checkpoint record stored together in a few parts, made valid by this entry written after them. KV <prefix>_checkpoints key <partition>.handover. A route checkpoint stored after the entry wins over the handover's record of that route.",
  },
);

export const HandoverPartSchema = Type.Object(
  {
    v: RecordVersion(1),
    id: Type.String({ description: "the id of the handover entry it belongs to; a part with another id is not this handover's" }),
    records: Type.Array(
      Type.Tuple([
        Type.String({ description: 'route key <modid>.<cmdid>' }),
        Type.Uint8Array({ description: 'the route\'s checkpoint record (a CheckpointRecord) as stored' }),
      ]),
      { description: '[route key, checkpoint record bytes] per route' },
    ),
  },
  { title: 'HandoverPart', description: 'Some of the route checkpoint records of a handover. KV <prefix>_checkpoints key <partition>.handover-<i>.' },
);

/** The holder of a partition's lease. KV `<prefix>_leases` key `p<partition>`. */
export type LeaseRecord = Static<typeof LeaseRecordSchema>;
/** A route node's report intake as announced in its heartbeat. */
export type IngestFigures = Static<typeof IngestFiguresSchema>;
/** A route node's membership heartbeat. KV `<prefix>_members`. */
export type MemberRecord = Static<typeof MemberRecordSchema>;
/** A checkpoint record of version 1 (read only). */
export type CheckpointRecordV1 = Static<typeof CheckpointRecordV1Schema>;
/** A checkpoint record of version 2, as written. */
export type CheckpointRecordV2 = Static<typeof CheckpointRecordV2Schema>;

/** A partition's graceful handover entry. */
export type HandoverEntry = Static<typeof HandoverEntrySchema>;
/** Some of a handover's route checkpoint records. */
export type HandoverPart = Static<typeof HandoverPartSchema>;

/** Every stored record's schema, by the base name of its `.schema.json` file. */
export const RECORD_SCHEMAS = {
  'lease-record': LeaseRecordSchema,
  'member-record': MemberRecordSchema,
  'checkpoint-record-v1': CheckpointRecordV1Schema,
  'checkpoint-record-v2': CheckpointRecordV2Schema,
  'handover-entry': HandoverEntrySchema,
  'handover-part': HandoverPartSchema,
} as const;
