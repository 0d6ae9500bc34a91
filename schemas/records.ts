/**
 * Decoders of the records stored in KV buckets: msgpack bytes to a record
 * checked against its schema (cluster-records.ts, contract.ts), or a
 * rejection with its kind and the failing field's path.
 *
 * Where an older or partial writer may have left an optional field a reader
 * can do without (a lease's `inc`, a member's figures, a checkpoint's
 * `rev`), the field is left out when it is not valid and the record kept,
 * as its schema's description says.
 */
import { Type, type TSchema } from '@sinclair/typebox';
import { TypeCompiler, type TypeCheck } from '@sinclair/typebox/compiler';
import { tryDecode } from './codec.ts';
import { fieldPath, rejectKindOf, validateSelfRegistration, type Validated } from './messages.ts';
import type { RejectKind, SelfRegistration } from './contract.ts';
import {
  CheckpointRecordV1Schema,
  CheckpointRecordV2Schema,
  HandoverEntrySchema,
  HandoverPartSchema,
  IngestFiguresSchema,
  LeaseRecordSchema,
  MemberRecordSchema,
  type CheckpointRecordV1,
  type CheckpointRecordV2,
  type HandoverEntry,
  type HandoverPart,
  type LeaseRecord,
  type MemberRecord,
} from './cluster-records.ts';

function fail<T>(kind: RejectKind, detail: string): Validated<T> {
  return { ok: false, kind, detail };
}

function isObject(x: unknown): x is Record<string, unknown> {
  return typeof x === 'object' && x !== null && !Array.isArray(x);
}

/** The rejection of a record of a known version its compiled schema refused. */
function refused<T>(check: TypeCheck<TSchema>, m: unknown, what: string): Validated<T> {
  if (!isObject(m)) return fail('wrong_type', `${what} must be a map`);
  const e = check.Errors(m).First();
  if (e === undefined) return fail('malformed', `${what} refused without a reason`);
  return fail(rejectKindOf(e), `${fieldPath(e.path)}: ${e.message}`);
}

/** msgpack, then `validate`. */
function decoded<T>(value: Uint8Array, validate: (m: unknown) => Validated<T>): Validated<T> {
  const d = tryDecode(value);
  return d.ok ? validate(d.value) : fail('malformed', d.error.message);
}

/** The version a record carries, or the rejection of another one. */
function versionOf(m: unknown, what: string, known: readonly number[]): number | Validated<never> {
  if (!isObject(m)) return fail('wrong_type', `${what} must be a map`);
  const v = m['v'];
  return typeof v === 'number' && known.includes(v) ? v : fail('bad_version', `unsupported ${what} version ${String(v)}`);
}

// -------------------------------------------------------- self-registration

/** A stored self-registration (KV `<prefix>_selfreg`), decoded and checked against the contract. */
export function decodeSelfRegistration(value: Uint8Array): Validated<SelfRegistration> {
  return decoded(value, validateSelfRegistration);
}

// ------------------------------------------------------------------- leases

const leaseCheck = TypeCompiler.Compile(Type.Omit(LeaseRecordSchema, ['inc']));

export function validateLeaseRecord(m: unknown): Validated<LeaseRecord> {
  const v = versionOf(m, 'lease record', [1]);
  if (typeof v !== 'number') return v;
  if (!leaseCheck.Check(m)) return refused(leaseCheck, m, 'lease record');
  const out: LeaseRecord = { v: 1, node: m.node, ts: m.ts };
  const inc = (m as { inc?: unknown }).inc;
  if (typeof inc === 'string') out.inc = inc;
  return { ok: true, value: out };
}

/** A stored lease (KV `<prefix>_leases`). */
export function decodeLeaseRecord(value: Uint8Array): Validated<LeaseRecord> {
  return decoded(value, validateLeaseRecord);
}

// ------------------------------------------------------------------ members

const memberCheck = TypeCompiler.Compile(Type.Omit(MemberRecordSchema, ['leaseMs', 'heartbeatMs', 'ingest']));
const countCheck = TypeCompiler.Compile(Type.Number({ minimum: 0 }));
const ingestCheck = TypeCompiler.Compile(IngestFiguresSchema);

export function validateMemberRecord(m: unknown): Validated<MemberRecord> {
  const v = versionOf(m, 'member record', [1]);
  if (typeof v !== 'number') return v;
  if (!memberCheck.Check(m)) return refused(memberCheck, m, 'member record');
  const out: MemberRecord = { v: 1, node: m.node, started: m.started, ts: m.ts };
  if (m.partitions !== undefined) out.partitions = m.partitions;
  if (m.leaving === true) out.leaving = true;
  const { leaseMs, heartbeatMs, ingest } = m as { leaseMs?: unknown; heartbeatMs?: unknown; ingest?: unknown };
  if (countCheck.Check(leaseMs)) out.leaseMs = leaseMs;
  if (countCheck.Check(heartbeatMs)) out.heartbeatMs = heartbeatMs;
  if (ingestCheck.Check(ingest)) {
    const { reports, batches, pending, reportsPerSec, batchesPerSec } = ingest;
    out.ingest = { reports, batches, pending, reportsPerSec, batchesPerSec };
  }
  return { ok: true, value: out };
}

/** A stored membership heartbeat (KV `<prefix>_members`). */
export function decodeMemberRecord(value: Uint8Array): Validated<MemberRecord> {
  return decoded(value, validateMemberRecord);
}

// -------------------------------------------------------------- checkpoints

const checkpointV1Check = TypeCompiler.Compile(Type.Omit(CheckpointRecordV1Schema, ['rev']));
const checkpointV2Check = TypeCompiler.Compile(Type.Omit(CheckpointRecordV2Schema, ['rev']));
const revCheck = TypeCompiler.Compile(Type.Integer({ minimum: 0, maximum: Number.MAX_SAFE_INTEGER }));

/** A checkpoint record of either version, as read. */
export type CheckpointRecordAny = CheckpointRecordV1 | CheckpointRecordV2;

/**
 * A checkpoint record of version 1 or 2, checked up to its checkpoint (the
 * route actor's state, which the actor checks itself once unpacked); `rev`
 * only when valid.
 */
export function validateCheckpointRecord(m: unknown): Validated<CheckpointRecordAny> {
  const v = versionOf(m, 'checkpoint record', [1, 2]);
  if (typeof v !== 'number') return v;
  let out: CheckpointRecordAny;
  if (v === 1) {
    if (!checkpointV1Check.Check(m)) return refused(checkpointV1Check, m, 'checkpoint record');
    out = { v: 1, checkpoint: m.checkpoint, ts: m.ts };
  } else {
    if (!checkpointV2Check.Check(m)) return refused(checkpointV2Check, m, 'checkpoint record');
    // The rule beyond the schema: a row per host, a value per key.
    const { keys, rows } = m.checkpoint.hosts;
    for (let i = 0; i < rows.length; i++) {
      if (rows[i]!.length !== keys.length) return fail('out_of_range', `checkpoint.hosts.rows[${i}]: ${rows[i]!.length} values for ${keys.length} keys`);
    }
    out = { v: 2, checkpoint: m.checkpoint, ts: m.ts };
  }
  const rev = (m as { rev?: unknown }).rev;
  if (revCheck.Check(rev)) out.rev = rev;
  return { ok: true, value: out };
}

/** A stored route checkpoint (KV `<prefix>_checkpoints`), version 1 or 2. */
export function decodeCheckpointRecord(value: Uint8Array): Validated<CheckpointRecordAny> {
  return decoded(value, validateCheckpointRecord);
}

// ---------------------------------------------------------------- handovers

// A reader needs the id and the number of parts; the other fields are informational.
const handoverEntryCheck = TypeCompiler.Compile(Type.Pick(HandoverEntrySchema, ['v', 'id', 'parts']));
const handoverPartCheck = TypeCompiler.Compile(HandoverPartSchema);

/** A partition's handover entry (KV `<prefix>_checkpoints` key `<partition>.handover`): its id and number of parts checked. */
export function decodeHandoverEntry(value: Uint8Array): Validated<Pick<HandoverEntry, 'v' | 'id' | 'parts'> & Partial<HandoverEntry>> {
  return decoded(value, (m) => {
    const v = versionOf(m, 'handover entry', [1]);
    if (typeof v !== 'number') return v;
    return handoverEntryCheck.Check(m) ? { ok: true, value: m } : refused(handoverEntryCheck, m, 'handover entry');
  });
}

/** One part of a handover (key `<partition>.handover-<i>`); whether its id is the entry's is the caller's to check. */
export function decodeHandoverPart(value: Uint8Array): Validated<HandoverPart> {
  return decoded(value, (m) => {
    const v = versionOf(m, 'handover part', [1]);
    if (typeof v !== 'number') return v;
    return handoverPartCheck.Check(m) ? { ok: true, value: m } : refused(handoverPartCheck, m, 'handover part');
  });
}
