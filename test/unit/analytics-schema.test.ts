import { expect } from 'chai';
import { FEATURES_18_16, featuresFor, parseVersion } from '../../schemas/clickhouse/features.ts';
import { DEFAULT_RETENTION, MIGRATIONS, isValidDatabaseName } from '../../schemas/clickhouse/migrations.ts';
import { migrationChecksum, partitionEnd, resolveRetention } from '../../src/analytics/migrate.ts';

function render(version: string, retention = DEFAULT_RETENTION): string {
  const features = featuresFor(parseVersion(version)!);
  return MIGRATIONS.flatMap((m) => m.statements({ db: 'lars', features, retention })).join(';\n');
}

describe('analytics schema', () => {
  it('analytics schema - parses server versions', () => {
    expect(parseVersion('18.16.1')).to.deep.include({ major: 18, minor: 16, patch: 1 });
    expect(parseVersion('26.7.2.1')).to.deep.include({ major: 26, minor: 7, patch: 2 });
    expect(parseVersion('garbage')).to.equal(undefined);
  });

  it('analytics schema - 18.16 gets none of the newer features, a modern server all', () => {
    expect(Object.values(FEATURES_18_16).every((v) => v === false)).to.equal(true);
    expect(Object.values(featuresFor(parseVersion('24.8.1')!)).every((v) => v === true)).to.equal(true);
    const v21 = featuresFor(parseVersion('21.3.20')!);
    expect(v21).to.include({ dateTime64: true, ttl: true, ipv4Type: true, dedupToken: false, asyncInsertSetting: false });
  });

  it('analytics schema - 18.16 DDL avoids DateTime64, TTL, IPv4, LowCardinality and dedup settings', () => {
    const ddl = render('18.16.1');
    for (const word of ['DateTime64', ' TTL ', 'IPv4,', 'IPv4)', 'LowCardinality', 'non_replicated_deduplication_window', 'SimpleAggregateFunction']) {
      expect(ddl, word).not.to.contain(word);
    }
    expect(ddl).to.contain('ts_ms UInt64,');
    expect(ddl).to.contain('ip UInt32');
  });

  it('analytics schema - modern DDL uses them, with the retention in the TTL', () => {
    const ddl = render('26.7.2.1', { ...DEFAULT_RETENTION, reportsDays: 9 });
    expect(ddl).to.contain("time DateTime64(3, 'UTC')");
    expect(ddl).to.contain('ts_ms UInt64 ALIAS toUnixTimestamp64Milli(time)');
    expect(ddl).to.contain('ip IPv4');
    expect(ddl).to.contain('caller LowCardinality(String)');
    expect(ddl).to.contain('TTL toDateTime(time) + INTERVAL 9 DAY');
    expect(ddl).to.contain('non_replicated_deduplication_window');
  });

  it('analytics schema - migrations are numbered 1..n, idempotent statements only', () => {
    expect(MIGRATIONS.map((m) => m.version)).to.deep.equal(MIGRATIONS.map((_, i) => i + 1));
    for (const v of ['18.16.1', '26.7.2.1']) {
      // CREATE ... IF NOT EXISTS, or ADD COLUMN (the runner takes "already exists" as done: 18.16 has no IF NOT EXISTS there)
      for (const stmt of render(v).split(';\n')) expect(stmt).to.match(/^(CREATE (TABLE|MATERIALIZED VIEW) IF NOT EXISTS |ALTER TABLE \S+ ADD COLUMN )/);
    }
  });

  it('analytics schema - checksums depend on the DDL, not on the retention', () => {
    const m = MIGRATIONS[0]!;
    expect(migrationChecksum(m, 'lars', FEATURES_18_16)).to.equal(migrationChecksum(m, 'lars', FEATURES_18_16));
    expect(migrationChecksum(m, 'lars', FEATURES_18_16)).not.to.equal(migrationChecksum(m, 'lars', featuresFor(parseVersion('26.7')!)));
  });

  it('analytics schema - retention and names are validated', () => {
    expect(() => resolveRetention({ reportsDays: 0 })).to.throw(RangeError);
    expect(resolveRetention({ reportsDays: 3 }).reportsDays).to.equal(3);
    expect(isValidDatabaseName('lars_test_01')).to.equal(true);
    expect(isValidDatabaseName('x; DROP')).to.equal(false);
  });

  it('analytics schema - partition ends as system.parts prints them', () => {
    expect(partitionEnd('2026-11-26', 'day')).to.equal(Date.UTC(2026, 10, 27));
    expect(partitionEnd('20261126', 'day')).to.equal(Date.UTC(2026, 10, 27));
    expect(partitionEnd('202612', 'month')).to.equal(Date.UTC(2027, 0, 1));
    expect(partitionEnd('tuple()', 'month')).to.equal(undefined);
  });
});
