import { expect } from 'chai';
import { MIGRATIONS, DEFAULT_RETENTION, TABLES } from '../../schemas/clickhouse/migrations.ts';
import { FEATURES_18_16 } from '../../schemas/clickhouse/features.ts';
import { distributedStatements, localDatabase, replicatedStatement, isValidClusterName, DISTRIBUTED_TABLES } from '../../schemas/clickhouse/cluster.ts';

describe('clickhouse cluster layout', () => {
  it('clickhouse cluster - a Distributed table of the same name over every table analysts read', () => {
    const sql = distributedStatements('lars', { name: 'c1', replicated: false });
    for (const t of [TABLES.reports, TABLES.reportsIngest, TABLES.rollup, TABLES.events, TABLES.quarantine]) {
      expect(sql.some((s) => s.startsWith(`CREATE TABLE IF NOT EXISTS lars.${t} AS lars_local.${t} ENGINE = Distributed('c1', 'lars_local', '${t}',`))).to.equal(true, t);
    }
    expect(DISTRIBUTED_TABLES.find((d) => d.table === TABLES.reportsIngest)?.shardBy).to.equal('cityHash64(seq)');
    expect(localDatabase('lars')).to.equal('lars_local');
  });

  it('clickhouse cluster - replicated local tables get a per-shard Keeper path; views and Null tables are unchanged', () => {
    const local = MIGRATIONS.flatMap((m) => m.statements({ db: 'lars_local', features: FEATURES_18_16, retention: DEFAULT_RETENTION }));
    const out = local.map(replicatedStatement);
    const reports = out.find((s) => s.includes(`lars_local.${TABLES.reports} (`))!;
    expect(reports).to.include(`ENGINE = ReplicatedMergeTree('/clickhouse/tables/{shard}/lars_local/${TABLES.reports}', '{replica}') PARTITION BY`);
    const rollup = out.find((s) => s.includes(`lars_local.${TABLES.rollup} (`))!;
    expect(rollup).to.include(`ENGINE = ReplicatedAggregatingMergeTree('/clickhouse/tables/{shard}/lars_local/${TABLES.rollup}', '{replica}')`);
    const ingest = out.find((s) => s.includes(`lars_local.${TABLES.reportsIngest} (`))!;
    expect(ingest).to.include('ENGINE = Null');
    for (let i = 0; i < local.length; i++) if (local[i]!.startsWith('CREATE MATERIALIZED VIEW')) expect(out[i]).to.equal(local[i]);
  });

  it('clickhouse cluster - cluster names are checked before they reach DDL', () => {
    expect(isValidClusterName('lars_prod-1')).to.equal(true);
    expect(isValidClusterName("x'; DROP")).to.equal(false);
    expect(isValidClusterName('')).to.equal(false);
  });
});
