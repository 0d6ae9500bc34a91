/**
 * A ClickHouse cluster on loopback for tests: N Debian clickhouse-servers,
 * each its own shard, named `cluster` in every server's `remote_servers`
 * (written to config.d after start: the servers reload it on the fly, so the
 * ports can be chosen by each server first).
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { startClickHouseServer, waitFor, type ClickHouseServer } from './clickhouse-server.ts';

export interface ClickHouseCluster {
  readonly name: string;
  readonly shards: ClickHouseServer[];
  destroy(): Promise<void>;
}

async function query(s: ClickHouseServer, sql: string): Promise<string> {
  const r = await fetch(`${s.url}/?query=${encodeURIComponent(sql)}`, { signal: AbortSignal.timeout(5000) });
  const text = await r.text();
  if (!r.ok) throw new Error(`ClickHouse ${s.url}: ${text.slice(0, 500)}`);
  return text.trim();
}

/** Starts `size` servers, one shard each, and waits until every server knows the cluster. */
export async function startClickHouseCluster(size = 2): Promise<ClickHouseCluster> {
  const name = `lars_c${randomBytes(3).toString('hex')}`;
  const shards = await Promise.all(Array.from({ length: size }, () => startClickHouseServer()));
  const shardXml = shards.map((s) => `<shard><replica><host>127.0.0.1</host><port>${s.tcpPort}</port></replica></shard>`).join('');
  const xml = `<?xml version="1.0"?>\n<yandex><remote_servers><${name}>${shardXml}</${name}></remote_servers></yandex>\n`;
  for (const s of shards) {
    mkdirSync(join(s.dir, 'config.d'), { recursive: true });
    writeFileSync(join(s.dir, 'config.d', 'lars-cluster.xml'), xml);
  }
  for (const s of shards) {
    await waitFor(async () => (await query(s, `SELECT count() FROM system.clusters WHERE cluster = '${name}'`)) === String(size), `cluster ${name} on ${s.url}`, 30_000, 200);
  }
  return {
    name,
    shards,
    async destroy() {
      await Promise.all(shards.map((s) => s.destroy()));
    },
  };
}
