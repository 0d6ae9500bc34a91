/**
 * Writes a cut batch to ClickHouse and acknowledges it: the insert with its
 * dedup token, retried with backoff until it lands (the same rows and token
 * on servers with insert_deduplication_token, a lookup first on the others),
 * the split of a batch ClickHouse refuses because of its data, quarantine of
 * the bad messages, and the hand-back (nak) of a batch a stopping worker
 * could not store.
 */
import { createHash, randomUUID } from 'node:crypto';
import type { Retention } from '../../schemas/clickhouse/migrations.ts';
import type { Logger } from '../lib/log.ts';
import type { RateLimitedLog } from '../lib/ratelog.ts';
import type { Dedup } from './dedup.ts';
import { Fenced } from './fence.ts';
import type { AnalyticsEngine } from './engine.ts';
import { FailureKind, backoffDelay, classifyFailure, sleep, type BackoffOptions } from './failures.ts';
import type { Item, RowSource } from './items.ts';
import { runMigrations } from './migrate.ts';
import type { Quarantine } from './quarantine.ts';
import type { PipelineName, PipelineStats, SinkHooks } from './types.ts';

/** Whether the pipeline is stopping or aborted; shared by its fetch loop and its writer. */
export class RunState {
  stopping = false;
  aborted = false;
  /** Clock time after which a stopping worker hands its batch back. */
  stopDeadline = Infinity;
  /** Wakes retry sleeps when stopping (aborting wakes them too). */
  readonly stopCtl = new AbortController();
}

export class Aborted extends Error {
  constructor() {
    super('sink aborted');
    this.name = 'Aborted';
  }
}

/** The writer's fence: its epoch (the first column of every insert) and the check before an ack. */
export interface WriterFence {
  epoch: number;
  /** Throws Fenced when another writer raised the fence past this epoch. */
  check(): Promise<void>;
  /** Ends the term (called once the check has thrown Fenced). */
  fenced(): void;
}

export interface WriterOptions {
  pipeline: PipelineName;
  fence: WriterFence;
  engine: AnalyticsEngine;
  rows: RowSource;
  dedup: Dedup;
  quarantine: Quarantine;
  stats: PipelineStats;
  run: RunState;
  hooks: SinkHooks;
  backoff: BackoffOptions;
  /** A nak delays redelivery past the worker's last pull request (see flush). */
  fetchExpiresMs: number;
  retention: Partial<Retention> | undefined;
  log: Logger;
  rlog: RateLimitedLog;
  now: () => number;
}

/** How long a retry waits for a failed insert to end on the server before it looks its rows up anyway. */
const SETTLE_TIMEOUT_MS = 30_000;

export class BatchWriter {
  private readonly o: WriterOptions;
  /** Query ids of inserts sent and not known to have succeeded (see settleInserts). */
  private sent: string[] = [];

  constructor(o: WriterOptions) {
    this.o = o;
  }

  /** Stores the batch's messages, then acks them all; on a stop past its deadline, naks them. */
  async flush(items: Item[]): Promise<void> {
    const { run, stats, engine, hooks } = this.o;
    const good = items.filter((i) => !i.bad && !i.dup);
    const bad = items.filter((i) => i.bad && !i.dup);
    // First try: only redelivered messages can be stored already.
    let check: 'redelivered' | 'all' = 'redelivered';
    // With dedup tokens, a retry repeats the first attempt exactly (same rows,
    // same token) and the server drops whatever of it landed, in the raw table
    // and in the rollup alike; unless the batch had to be split.
    const tokens = engine.features.dedupToken;
    let fixed: Item[] | undefined;
    const split = { started: false };
    for (let attempt = 0; ; attempt++) {
      if (run.aborted) return;
      try {
        let rows: number;
        if (tokens && !split.started) {
          fixed ??= await this.o.dedup.dropStored(good, good.filter((i) => i.redelivered));
          rows = fixed.length > 0 ? await this.insertOrSplit(fixed, split) : 0;
        } else {
          rows = await this.store(good, check, split);
        }
        if (bad.length > 0) await this.o.quarantine.store(bad);
        await hooks.afterInsert?.({ pipeline: this.o.pipeline, seqs: good.map((i) => i.seq) });
        if (run.aborted) return;
        // Stored only if no other writer raised the fence before the insert ran (see fence.ts).
        await this.o.fence.check();
        if (run.aborted) return;
        stats.rows += rows;
        stats.batches++;
        this.ack(items);
        return;
      } catch (err) {
        if (run.aborted || err instanceof Aborted) return;
        if (err instanceof Fenced) {
          this.o.log.warn({ messages: items.length, err: err.message }, 'fenced: batch left unacknowledged for the writer that took over');
          this.o.fence.fenced();
          return;
        }
        const f = classifyFailure(err);
        stats.retries++;
        stats.lastError = f.message;
        // Whatever failed may have landed in part: look before the next try,
        // once the failed inserts have finished on the server (see settleInserts).
        check = 'all';
        const settling = this.settleInserts();
        if (run.stopping && this.o.now() >= run.stopDeadline) {
          // Redelivered once our last pull request has expired: nats-server 2.9
          // would otherwise hand them straight back to it, and our closed inbox
          // would leave them waiting a full ack wait.
          for (const i of items) i.msg.nak(this.o.fetchExpiresMs + 500);
          this.o.log.warn({ messages: items.length, err: f.message }, 'stopping with ClickHouse unavailable: batch handed back to the stream');
          return;
        }
        this.o.rlog.warn(`insert-${this.o.pipeline}`, { err: f.message, code: f.code, kind: f.kind, attempt }, 'ClickHouse insert failed; backing off');
        if (f.kind === FailureKind.missingSchema) {
          await runMigrations(engine, { repair: true, retention: this.o.retention, log: this.o.log }).catch((e: unknown) =>
            this.o.rlog.warn('migrate', { err: e }, 'could not re-create the schema'),
          );
        }
        let delay = backoffDelay(attempt, this.o.backoff);
        if (run.stopping) delay = Math.min(delay, Math.max(0, run.stopDeadline - this.o.now()));
        await sleep(delay, run.stopCtl.signal);
        await settling;
      }
    }
  }

  /**
   * Acks a stored batch. Without a connection (it closed under the worker)
   * the rows stay stored and the messages come back to some worker, which
   * finds them stored: nothing to retry here.
   */
  private ack(items: Item[]): void {
    try {
      for (const i of items) i.msg.ack();
      this.o.stats.acked += items.length;
    } catch (err) {
      this.o.rlog.warn(`ack-${this.o.pipeline}`, { err, messages: items.length }, 'could not acknowledge a stored batch; its redelivery will be found stored');
    }
  }

  /** Stores the items' rows; returns the rows inserted. Throws on a failure that is not about the data. */
  private async store(items: Item[], check: 'redelivered' | 'all', split: { started: boolean }): Promise<number> {
    const todo = await this.o.dedup.dropStored(items, check === 'redelivered' ? items.filter((i) => i.redelivered) : items);
    if (todo.length === 0) return 0;
    return this.insertOrSplit(todo, split);
  }

  private async insertOrSplit(items: Item[], split: { started: boolean }): Promise<number> {
    if (this.o.run.aborted) throw new Aborted();
    try {
      await this.insert(items);
      return items.reduce((n, i) => n + i.rows, 0);
    } catch (err) {
      const f = classifyFailure(err);
      if (f.kind !== FailureKind.data) throw err;
      // The server refused something in these rows. A refused insert may
      // still have written the raw table before a view failed: look first.
      split.started = true;
      const rest = await this.o.dedup.dropStored(items);
      if (rest.length === 0) return 0;
      if (rest.length === 1) {
        await this.o.quarantine.store(rest.map((i) => ({ ...i, bad: { kind: 'rejected', detail: f.message } })));
        return 0;
      }
      const mid = rest.length >> 1;
      return (await this.insertOrSplit(rest.slice(0, mid), split)) + (await this.insertOrSplit(rest.slice(mid), split));
    }
  }

  /**
   * Waits until the inserts sent since the last call no longer run on the
   * server. An insert whose connection broke (a socket hang up, a timeout)
   * may have been received whole and still be writing; a look-up before it
   * ends finds nothing and the retry would store its rows twice.
   */
  private async settleInserts(): Promise<void> {
    const ids = this.sent;
    this.sent = [];
    for (const id of ids) {
      const done = await this.o.engine.settle(id, SETTLE_TIMEOUT_MS).catch((err: unknown) => {
        this.o.rlog.warn(`settle-${this.o.pipeline}`, { err, queryId: id }, 'could not ask ClickHouse whether a failed insert still runs');
        return false;
      });
      if (!done) this.o.rlog.warn(`settle-${this.o.pipeline}`, { queryId: id }, 'a failed insert may still be running; its rows are looked up anyway');
    }
  }

  private async insert(items: Item[]): Promise<void> {
    const { log, rows, engine } = this.o;
    if (log.isLevelEnabled('debug')) {
      log.debug({ first: items[0]?.seq, last: items[items.length - 1]?.seq, messages: items.length }, 'insert');
    }
    const h = createHash('sha1').update(rows.stream);
    for (const i of items) h.update(i.variant ? `,${i.seq}:${i.variant}` : `,${i.seq}`);
    const fence = `${this.o.fence.epoch}\t`;
    let body = '';
    for (const i of items) body += fence + i.line;
    const queryId = randomUUID();
    this.sent.push(queryId);
    await engine.insertTsv(rows.table, rows.columns, body, { token: h.digest('hex'), queryId });
    this.sent = this.sent.filter((id) => id !== queryId);
  }
}
