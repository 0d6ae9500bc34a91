/**
 * What ClickHouse stores of the run's reports, per caller: rows, distinct
 * report ids (from `latency_ms`, see workload.ts) within the ids the caller
 * made, rows with ids it never made, and evidence (missing ids, ids stored
 * twice with the stream sequences of their rows).
 */
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { openEngine } from '../../src/analytics/engine.ts';
import { decode } from '../../schemas/codec.ts';
import type { NatsConnection } from '../../src/nats/connect.ts';
import type { ReportBatch } from '../../schemas/messages.ts';
import { ID_SCALE, ID_SQL } from './workload.ts';
import type { CallerTally } from './types.ts';

const SAMPLE = 8;

/** Messages the sinks put in the quarantine table (not stored as reports), by kind. */
export async function quarantined(url: string, database: string): Promise<Record<string, number>> {
  const e = await openEngine({ url, database, requestTimeoutMs: 60_000 });
  try {
    const r = await e.query<{ kind: string; c: string | number }>(`SELECT kind, count() AS c FROM ${e.database}.quarantine GROUP BY kind`);
    return Object.fromEntries(r.map((x) => [x.kind, Number(x.c)]));
  } finally {
    await e.close();
  }
}

export async function tallyStored(url: string, database: string, made: ReadonlyMap<string, number>): Promise<CallerTally[]> {
  const e = await openEngine({ url, database, requestTimeoutMs: 120_000 });
  try {
    const db = e.database;
    const ids = `SELECT toString(caller) AS caller, ${ID_SQL} AS id, seq FROM ${db}.reports`;
    const rows = await e.query<{ caller: string; rows: string | number; ids: string | number }>(
      `SELECT caller, count() AS rows, uniqExact(id) AS ids FROM (${ids}) GROUP BY caller`,
    );
    const out: CallerTally[] = [];
    for (const r of rows) {
      const n = made.get(r.caller) ?? 0;
      const q = `caller = '${r.caller.replaceAll("'", "\\'")}'`;
      const inRange = await e.query<{ rows: string | number; ids: string | number }>(`SELECT count() AS rows, uniqExact(id) AS ids FROM (${ids}) WHERE ${q} AND id >= 1 AND id <= ${n}`);
      const rowsIn = Number(inRange[0]?.rows ?? 0);
      const distinct = Number(inRange[0]?.ids ?? 0);
      const t: CallerTally = { caller: r.caller, made: n, rows: Number(r.rows), distinct, foreign: Number(r.rows) - rowsIn, missingSample: [], duplicateSample: [] };
      if (rowsIn > distinct) {
        const d = await e.query<{ id: string | number; c: string | number; seqs: Array<string | number> }>(
          `SELECT id, count() AS c, groupArray(seq) AS seqs FROM (${ids}) WHERE ${q} GROUP BY id HAVING c > 1 ORDER BY id LIMIT ${SAMPLE}`,
        );
        t.duplicateSample = d.map((x) => ({ id: Number(x.id), rows: Number(x.c), seqs: x.seqs.map(Number) }));
      }
      if (distinct < n) {
        // the ids present, in order: the gaps are the missing ones
        const present = await e.query<{ id: string | number }>(`SELECT DISTINCT id FROM (${ids}) WHERE ${q} AND id >= 1 AND id <= ${n} ORDER BY id`);
        let expect = 1;
        for (const p of present) {
          const id = Number(p.id);
          for (; expect < id && t.missingSample.length < SAMPLE; expect++) t.missingSample.push(expect);
          expect = id + 1;
          if (t.missingSample.length >= SAMPLE) break;
        }
        for (; expect <= n && t.missingSample.length < SAMPLE; expect++) t.missingSample.push(expect);
      }
      out.push(t);
    }
    return out;
  } finally {
    await e.close();
  }
}

/**
 * Where the sampled missing reports are: reads the whole reports stream
 * (before the servers stop) and fills each tally's `missingInStream` with
 * the stream sequence of every sampled missing id found there. A missing
 * report that is in the stream was lost between the stream and ClickHouse
 * (the sinks); one that is not, by JetStream after its acknowledgement.
 */
export async function locateMissing(nc: NatsConnection, stream: string, tallies: CallerTally[], timeoutMs = 180_000): Promise<{ firstSeq: number } | undefined> {
  const wanted = new Map<string, CallerTally>();
  for (const t of tallies) if (t.missingSample.length > 0) wanted.set(t.caller, t);
  if (wanted.size === 0) return undefined;
  const jsm = await jetstreamManager(nc, { timeout: 10_000 });
  const state = (await jsm.streams.info(stream)).state;
  const total = state.last_seq;
  const consumer = await jetstream(nc, { timeout: 10_000 }).consumers.get(stream);
  const until = Date.now() + timeoutMs;
  let seen = 0;
  for (const t of wanted.values()) t.missingInStream = [];
  while (seen < total && Date.now() < until) {
    const batch = await consumer.fetch({ max_messages: 2000, expires: 2000 });
    let got = 0;
    for await (const m of batch) {
      got++;
      seen = m.seq;
      let b: ReportBatch;
      try {
        b = decode(m.data) as ReportBatch;
      } catch {
        continue;
      }
      const t = wanted.get(b.sender);
      if (!t) continue;
      for (const r of b.reports) {
        const id = Math.round((r[2] - 1) * ID_SCALE);
        if (t.missingSample.includes(id)) t.missingInStream!.push({ id, seq: m.seq });
      }
    }
    if (got === 0) break;
  }
  return { firstSeq: state.first_seq };
}
