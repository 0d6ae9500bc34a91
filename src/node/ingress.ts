/**
 * The route node's ingress of report batches: a batch taken from a
 * partition's subscription is read, or counted as rejected (oversize,
 * duplicate, malformed, invalid, on the wrong subject), logged once per kind
 * with a rate limit (RejectCounter), and dropped. Hot path: no allocation
 * beyond the decode.
 */
import type { Msg } from '@nats-io/transport-node';
import { partitionOf, parseRouteTail } from '../../schemas/subjects.ts';
import { LIMITS, validateReportBatch, type ReportBatch } from '../../schemas/messages.ts';
import { tryDecode } from '../../schemas/codec.ts';
import type { RejectCounter } from '../lib/rejects.ts';
import { ReportDedup, DedupVerdict } from '../cluster/report-dedup.ts';

export class Ingress {
  /** Report batches already ingested, by message id: a retried publish reaches the subscription twice. */
  private readonly dedup: ReportDedup;
  private readonly rejects: RejectCounter;
  private readonly partitions: number;

  constructor(rejects: RejectCounter, partitions: number, clock: () => number) {
    this.rejects = rejects;
    this.partitions = partitions;
    this.dedup = new ReportDedup({ clock });
  }

  /** The batch `m` carries, taken on `partition`'s subscription; undefined when rejected. */
  readBatch(m: Msg, partition: number): ReportBatch | undefined {
    const data = m.data;
    if (data.length > LIMITS.maxMessageBytes) {
      this.rejects.reject('oversize', `${data.length} bytes`, { subject: m.subject });
      return undefined;
    }
    const msgId = m.headers?.get('Nats-Msg-Id');
    if (msgId && this.dedup.seeMsgId(msgId) === DedupVerdict.duplicate) {
      this.rejects.reject('duplicate', `batch ${msgId} ingested already`, { subject: m.subject });
      return undefined;
    }
    const d = tryDecode(data);
    if (!d.ok) {
      this.rejects.reject('malformed', d.error.message, { subject: m.subject, payload: data });
      return undefined;
    }
    const v = validateReportBatch(d.value);
    if (!v.ok) {
      this.rejects.reject(v.kind, v.detail, { subject: m.subject, payload: data });
      return undefined;
    }
    const b = v.value;
    const tail = parseRouteTail(m.subject);
    if (!tail || tail.modid !== b.modid || tail.cmdid !== b.cmdid || partitionOf(b.modid, b.cmdid, this.partitions) !== partition) {
      this.rejects.reject('subject_mismatch', `batch for ${b.modid}.${b.cmdid} on ${m.subject}`, { subject: m.subject });
      return undefined;
    }
    return b;
  }
}
