/**
 * A single nats-server stopped under load and restarted on its store: agents
 * keep picking and reporting while it is down, a route node and a sink into
 * ClickHouse reconnect, and every report made (before, during and after the
 * outage) is stored in ClickHouse exactly once: rows equal reports made, and
 * every stored batch has exactly its reports as rows, under its sender.
 */
import { expect } from 'chai';
import { startNatsServer, type NatsServer } from '../../src/nats/natsd.ts';
import { connectNats } from '../../src/nats/connect.ts';
import type { Agent } from '../../src/agent/agent.ts';
import { TestCluster, hosts } from '../helpers/cluster.ts';
import { agentTotals, readStoredReports, sinkDrained, rowsPerSenderSeq, startChdbSink, startReportLoad, type ChdbSink, type ReportLoad } from '../helpers/cluster-load.ts';
import { countRows } from '../helpers/clickhouse-server.ts';
import { waitFor } from '../helpers/wait.ts';

const ROUTES: Array<[number, number]> = Array.from({ length: 6 }, (_, i) => [970 + i, 4]);
const AGENTS = 6;

describe('cluster - a nats-server restarted on its store under load (real nats-server, chdb)', function () {
  this.timeout(120_000);
  let server: NatsServer | undefined;
  let c: TestCluster | undefined;
  let sink: ChdbSink | undefined;
  let load: ReportLoad | undefined;
  const agents: Agent[] = [];

  afterEach(async () => {
    load?.stop();
    for (const a of agents.splice(0)) await a.close().catch(() => undefined);
    await sink?.close();
    await c?.stop(true).catch(() => undefined);
    await server?.stop();
  });

  // SIGKILL too: the consumer's acknowledged position can fall back after a crash, and what
  // comes again arrives as a first delivery; the sink must still store it once.
  for (const signal of ['SIGTERM', 'SIGKILL'] as const) it(`restart - the only nats-server stopped (${signal}) under load and restarted on its store: every report made is stored in ClickHouse exactly once`, async () => {
    server = await startNatsServer();
    c = await TestCluster.start(server);
    await c.startNode();
    for (const [m, cmd] of ROUTES) await c.addRoute(m, cmd, hosts(3, `10.${m % 200}.0.`));
    sink = await startChdbSink(await connectNats({ url: server.url, name: 'sink' }), c.n);
    for (let i = 0; i < AGENTS; i++) agents.push(await c.agent({ agentId: `rs-agent-${i}`, strategy: 'swrr', batchMaxDelayMs: 20, ackTimeoutMs: 2000 }));
    await Promise.all(agents.map((a) => a.prepare(ROUTES)));
    // 6 agents × 2 routes × 20 calls/s: about 240 reports/s
    load = startReportLoad(agents, ROUTES, () => ({ retcode: 0, latencyMs: 2 }), { perAgent: 2, callsPerTick: 1, tickMs: 50 });
    await waitFor(() => agents.every((a) => a.stats().ackedBatches >= 10), { timeoutMs: 20_000, what: 'acknowledged reports from every agent' });

    const old = server;
    old.process.kill(signal);
    await new Promise<void>((r) => (old.process.exitCode !== null || old.process.signalCode !== null ? r() : old.process.once('exit', () => r())));
    await waitFor(() => agents.every((a) => !a.isConnected()), { timeoutMs: 10_000, what: 'agents see the disconnect' });
    // the outage lasts until the agents made a few hundred reports with no server
    const atStop = agentTotals(agents).reports;
    await waitFor(() => agentTotals(agents).reports >= atStop + 500, { timeoutMs: 20_000, what: 'reports made during the outage' });
    expect(load.failedPicks(), 'picks from the cache during the outage').to.equal(0);
    server = await startNatsServer({ port: old.port, storeDir: old.storeDir });

    await waitFor(() => agents.every((a) => a.isConnected()), { timeoutMs: 20_000, what: 'agents reconnected' });
    const acked = agents.map((a) => a.stats().ackedBatches);
    await waitFor(() => agents.every((a, i) => a.stats().ackedBatches >= acked[i]! + 10), { timeoutMs: 20_000, what: 'acknowledgements after the restart' });
    load.stop();
    await Promise.all(agents.map((a) => a.flush({ timeoutMs: 30_000 })));
    const t = agentTotals(agents);
    expect(t.dropped, 'dropped reports').to.equal(0);
    expect(t.pending, 'pending reports').to.equal(0);
    expect(t.retried, 'batches retried across the outage').to.be.above(0);
    expect(load.failedPicks(), 'failed picks').to.equal(0);

    let rows = 0;
    await waitFor(
      async () => {
        rows = await countRows(sink!.engine, 'reports');
        return rows >= t.reports && (await sinkDrained(c!.nc, c!.n));
      },
      { timeoutMs: 30_000, what: 'every report in ClickHouse', intervalMs: 200 },
    ).catch((err: unknown) => {
      throw new Error(`${(err as Error).message}: ${rows} rows of ${t.reports} reports`);
    });
    const stored = await readStoredReports(c.nc, c.n);
    rows = await countRows(sink.engine, 'reports');
    console.log(`      ${t.reports} reports made (${atStop} before the stop, ${t.retried} batches retried), ${rows} rows, ${stored.batches.size} batches stored; sink ${JSON.stringify(sink.sink.stats().reports)}`);
    expect(rows, 'rows in ClickHouse').to.equal(t.reports);
    expect(stored.reports, 'reports in the stream').to.equal(t.reports);
    expect(stored.messages, 'each batch stored once in the stream').to.equal(stored.batches.size);
    // rows per (sender, stream sequence) == the batch's size, for every batch; no other rows
    const per = await rowsPerSenderSeq(sink.engine);
    const off: string[] = [];
    for (const [id, b] of stored.batches) {
      const k = `${b.sender}#${b.seq}`;
      if (per.get(k) !== b.reports) off.push(`${id} (seq ${b.seq}): ${per.get(k) ?? 0} rows of ${b.reports}`);
    }
    expect(off.slice(0, 10), 'batches not stored exactly once').to.deep.equal([]);
    expect(per.size, 'row groups').to.equal(stored.batches.size);
  });
});
