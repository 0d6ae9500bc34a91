/**
 * The writer fence in ClickHouse. One sink writes at a time (it holds the
 * writer lease, writer-lease.ts); on taking over it records its epoch in
 * `sink_fences` on every shard and waits until no insert of an earlier
 * writer still runs. From then on the ingest views drop every row whose
 * fence is below the highest recorded: a writer that lost the lease while
 * paused mid-batch, and wakes up later, inserts nothing. After each insert
 * the writer reads the fence again and acknowledges only when it is still
 * its own: the fence read after an insert is at least the one the insert was
 * checked against, so a writer that sees its own stored what it sent.
 */
import { TABLES } from '../../schemas/clickhouse/migrations.ts';
import type { Logger } from '../lib/log.ts';
import { EngineKind, runningWhile, sqlString, type AnalyticsEngine } from './engine.ts';
import { escapeTsv } from './rows.ts';
import type { PipelineName } from './types.ts';

/** An insert into a table the pipeline's fence guards, still running on a server (patterns split so that this query does not match itself). */
function guardedInsert(p: PipelineName): string {
  const t = p === 'reports' ? TABLES.reportsIngest : TABLES.events;
  return `query LIKE concat('%INSERT', ' INTO%') AND query LIKE concat('%${t.slice(0, 4)}', '${t.slice(4)}%')`;
}

export interface FenceOptions {
  engine: AnalyticsEngine;
  /** The stream whose writers it fences (each pipeline has its own writer and fence). */
  pipeline: PipelineName;
  /** This sink's id (recorded beside its epoch). */
  sink: string;
  log: Logger;
  /** How long taking over waits for an earlier writer's inserts to end before going on (they are looked up after). */
  settleTimeoutMs?: number;
  signal?: AbortSignal;
}

/** Thrown by a writer whose fence was raised past (another sink took over): its batch is not acknowledged. */
export class Fenced extends Error {
  readonly code = 'SINK_FENCED';
  constructor(epoch: number, current: number) {
    super(`another sink took over as the writer (fence ${current}, ours ${epoch})`);
    this.name = 'Fenced';
  }
}

export class Fence {
  private readonly o: FenceOptions;

  constructor(o: FenceOptions) {
    this.o = o;
  }

  /** The highest epoch recorded (0 before any). */
  async current(): Promise<number> {
    const { engine } = this.o;
    const r = await engine.query<{ e: number | string }>(`SELECT max(epoch) AS e FROM ${engine.database}.${TABLES.sinkFences} WHERE pipeline = '${this.o.pipeline}'`);
    return Number(r[0]?.e ?? 0);
  }

  /** Throws Fenced unless `epoch` is still the highest. */
  async check(epoch: number): Promise<void> {
    const now = await this.current();
    if (now !== epoch) throw new Fenced(epoch, now);
  }

  /** Records `epoch` on every shard, then waits until the inserts that may have been checked against an older one have ended. */
  async raise(epoch: number): Promise<void> {
    const { engine, sink } = this.o;
    const slots = await this.shards();
    const time = new Date().toISOString().slice(0, 19).replace('T', ' ');
    let body = '';
    for (let s = 0; s < slots; s++) body += `${this.o.pipeline}\t${epoch}\t${s}\t${escapeTsv(sink)}\t${time}\n`;
    await engine.insertTsv(`${engine.database}.${TABLES.sinkFences}`, ['pipeline', 'epoch', 'slot', 'sink', 'time'], body);
    await this.settle();
  }

  /** Shards of the cluster (one row each, by the `slot` sharding key); 1 off a cluster. */
  private async shards(): Promise<number> {
    const { engine } = this.o;
    if (!engine.cluster) return 1;
    const r = await engine.query<{ n: number | string }>(`SELECT count(DISTINCT shard_num) AS n FROM system.clusters WHERE cluster = ${sqlString(engine.cluster.name)}`);
    return Math.max(1, Number(r[0]?.n ?? 1));
  }

  /** Waits until no guarded insert runs on any server (the embedded engine runs only this process's). */
  private async settle(): Promise<void> {
    const { engine, log } = this.o;
    if (engine.kind === EngineKind.chdb) return;
    const until = Date.now() + (this.o.settleTimeoutMs ?? 60_000);
    const urls = engine.cluster ? engine.servers : [undefined];
    for (const url of urls) {
      const at = url === undefined ? engine : await engine.atServer(url, engine.database);
      try {
        const n = await runningWhile((sql) => at.query(sql), guardedInsert(this.o.pipeline), until, this.o.signal);
        if (n > 0 && !this.o.signal?.aborted) {
          log.warn({ inserts: n, server: url }, 'inserts of an earlier writer still run after the fence was raised; their messages are looked up before they are stored');
        }
      } finally {
        if (at !== engine) await at.close();
      }
    }
  }
}
