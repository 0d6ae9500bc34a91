/**
 * What cannot be stored goes to the `quarantine` table with its bytes and
 * why; counted by kind and logged at a bounded rate. If ClickHouse refuses
 * the quarantine rows themselves the messages are counted as `lost`: bad
 * input never blocks the stream.
 */
import { createHash } from 'node:crypto';
import { TABLES } from '../../schemas/clickhouse/migrations.ts';
import type { RateLimitedLog } from '../lib/ratelog.ts';
import type { AnalyticsEngine } from './engine.ts';
import { FailureKind, classifyFailure } from './failures.ts';
import type { Item } from './items.ts';
import { quarantineLine } from './rows.ts';
import type { PipelineName, PipelineStats } from './types.ts';

export interface QuarantineOptions {
  engine: AnalyticsEngine;
  pipeline: PipelineName;
  stream: string;
  /** The worker's id, stored with each row. */
  sinkId: string;
  stats: PipelineStats;
  rlog: RateLimitedLog;
  now: () => number;
}

export class Quarantine {
  private readonly o: QuarantineOptions;

  constructor(o: QuarantineOptions) {
    this.o = o;
  }

  /** Stores the items in quarantine; throws on a failure that is not about the rows (the caller retries). */
  async store(items: Item[]): Promise<void> {
    const { engine, stream, stats, rlog, pipeline } = this.o;
    const at = this.o.now();
    let body = '';
    for (const i of items) {
      const bad = i.bad ?? { kind: 'rejected', detail: '' };
      body += quarantineLine({
        at,
        stream,
        seq: i.seq,
        subject: i.msg.subject,
        kind: bad.kind,
        detail: bad.detail,
        sink: this.o.sinkId,
        payload: i.msg.data,
      });
    }
    const h = createHash('sha1').update(`q:${stream}`);
    for (const i of items) h.update(`,${i.seq}`);
    let lost = false;
    try {
      await engine.insertTsv(`${engine.database}.${TABLES.quarantine}`, undefined, body, { token: h.digest('hex') });
    } catch (err) {
      // ClickHouse refusing the quarantine rows themselves (someone changed
      // that table) must not stop the stream either; anything else is retried.
      if (classifyFailure(err).kind !== FailureKind.data) throw err;
      lost = true;
      rlog.error(`quarantine-lost-${pipeline}`, { err, messages: items.length }, 'quarantine table refused rows; messages dropped');
    }
    for (const i of items) {
      const kind = lost ? 'lost' : (i.bad?.kind ?? 'rejected');
      stats.quarantined[kind] = (stats.quarantined[kind] ?? 0) + 1;
      rlog.warn(`quarantine-${pipeline}-${kind}`, { seq: i.seq, subject: i.msg.subject, kind, detail: i.bad?.detail.slice(0, 300) }, 'message quarantined');
    }
  }
}
