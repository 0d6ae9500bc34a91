/**
 * Acknowledged reports: agents publish at a steady rate while the
 * nats-server is stopped for about 3 s and restarted on the same store and
 * port; afterwards the REPORTS stream holds exactly the reports the agents
 * made, and none was dropped.
 */
import { expect } from 'chai';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { startNatsServer, type NatsServer } from '../../src/nats/natsd.ts';
import { connectNats, type NatsConnection } from '../../src/nats/connect.ts';
import { ensureStreams } from '../../src/nats/streams.ts';
import { decode } from '../../schemas/codec.ts';
import { createAgent, type Agent } from '../../src/agent/agent.ts';
import { parseReportMsgId } from '../../schemas/msg-id.ts';
import { names, type Names } from '../../schemas/subjects.ts';
import type { ReportBatch } from '../../schemas/messages.ts';
import { uniquePrefix, TEST_CLUSTER_STREAM_LIMITS } from '../helpers/cluster.ts';
import { waitFor } from '../helpers/wait.ts';

const OUTAGE_MS = 3000;

/** Every stored report batch of the stream: total messages, distinct msg ids, and the reports of the distinct ones. */
async function readReports(nc: NatsConnection, n: Names): Promise<{ messages: number; distinct: number; reports: number; senders: Set<string> }> {
  const jsm = await jetstreamManager(nc);
  const total = (await jsm.streams.info(n.reportsStream)).state.messages;
  const consumer = await jetstream(nc).consumers.get(n.reportsStream);
  const ids = new Set<string>();
  const senders = new Set<string>();
  let messages = 0;
  let reports = 0;
  while (messages < total) {
    const batch = await consumer.fetch({ max_messages: 1000, expires: 2000 });
    for await (const m of batch) {
      messages++;
      const id = m.headers?.get('Nats-Msg-Id') ?? '';
      const parsed = parseReportMsgId(id);
      expect(parsed, `msg id ${id}`).to.not.equal(undefined);
      if (ids.has(id)) continue;
      ids.add(id);
      const b = decode(m.data) as ReportBatch;
      expect(b.sender).to.equal(parsed!.sender);
      senders.add(b.sender);
      reports += b.reports.length;
    }
  }
  return { messages, distinct: ids.size, reports, senders };
}

/** Steady traffic: every tick each agent reports `perTick` calls over three routes and two hosts. */
function steadyTraffic(agents: Agent[], perTick = 12, tickMs = 5): { stop: () => void } {
  const hosts = [
    { ip: '10.0.0.1', port: 8000 },
    { ip: '10.0.0.2', port: 8000 },
  ];
  let k = 0;
  const t = setInterval(() => {
    for (const a of agents) {
      for (let i = 0; i < perTick; i++) {
        k++;
        a.report(1 + (k % 3), 1, hosts[k % 2]!, k % 7 === 0 ? 1 : 0, 1 + (k % 13));
      }
    }
  }, tickMs);
  return { stop: () => clearInterval(t) };
}

describe('acknowledged reports across a nats-server restart (real nats-server)', function () {
  this.timeout(90_000);

  for (const signal of ['SIGTERM', 'SIGKILL'] as const) {
    it(`acked - the server is stopped (${signal}) for ~3 s and restarted on its store: the stream holds every report exactly once, none dropped`, async () => {
      let server: NatsServer = await startNatsServer();
      const n = names(uniquePrefix());
      const agents: Agent[] = [];
      let admin: NatsConnection | undefined;
      let traffic: { stop: () => void } | undefined;
      try {
        admin = await connectNats({ url: server.url, name: 'admin' });
        await ensureStreams(admin, n, TEST_CLUSTER_STREAM_LIMITS);
        await admin.close();
        admin = undefined;
        for (let i = 0; i < 2; i++) {
          agents.push(await createAgent({ servers: server.url, prefix: n.prefix, partitions: 8, agentId: `acked-${i}`, batchMaxReports: 50, batchMaxDelayMs: 10, ackTimeoutMs: 2000 }));
        }
        traffic = steadyTraffic(agents);
        await waitFor(() => agents.every((a) => a.stats().ackedBatches >= 20), { what: 'steady acked traffic' });

        server.process.kill(signal);
        await new Promise<void>((resolve) => (server.process.exitCode !== null || server.process.signalCode !== null ? resolve() : server.process.once('exit', () => resolve())));
        await waitFor(() => agents.every((a) => !a.isConnected()), { what: 'agents see the disconnect', timeoutMs: 5000 });
        const madeBefore = agents.map((a) => a.stats().reports);
        // The outage itself: traffic goes on for its length.
        await new Promise((r) => setTimeout(r, OUTAGE_MS));
        expect(agents.map((a) => a.stats().reports), 'reports made during the outage').to.satisfy((now: number[]) => now.every((v, i) => v > madeBefore[i]!));
        server = await startNatsServer({ port: server.port, storeDir: server.storeDir });

        await waitFor(() => agents.every((a) => a.isConnected()), { what: 'agents reconnected', timeoutMs: 20_000 });
        const acked = agents.map((a) => a.stats().ackedBatches);
        await waitFor(() => agents.every((a, i) => a.stats().ackedBatches >= acked[i]! + 20), { what: 'acks after the restart', timeoutMs: 20_000 });
        traffic.stop();
        traffic = undefined;
        await Promise.all(agents.map((a) => a.flush({ timeoutMs: 30_000 })));

        const made = agents.reduce((s, a) => s + a.stats().reports, 0);
        for (const a of agents) {
          const st = a.stats();
          expect(st.droppedReports, 'dropped reports').to.equal(0);
          expect(st.pendingReports).to.equal(0);
          expect(st.ackedBatches).to.equal(st.batches);
        }
        expect(agents.some((a) => a.stats().retriedBatches > 0), 'batches retried across the outage').to.equal(true);

        admin = await connectNats({ url: server.url, name: 'admin' });
        const stored = await readReports(admin, n);
        expect(stored.reports, 'reports in the stream (distinct msg ids)').to.equal(made);
        expect(stored.distinct).to.equal(agents.reduce((s, a) => s + a.stats().batches, 0));
        expect(stored.messages, 'stored once: retries inside the duplicate window are dropped by the stream').to.equal(stored.distinct);
        expect([...stored.senders].sort()).to.deep.equal(['acked-0', 'acked-1']);
      } finally {
        traffic?.stop();
        for (const a of agents) await a.close().catch(() => undefined);
        await admin?.close().catch(() => undefined);
        await server.stop();
      }
    });
  }
});
