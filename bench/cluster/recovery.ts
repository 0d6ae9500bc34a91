/**
 * Healing after a NATS outage (`recovery_after_nats_restart_ms`): one
 * nats-server with its store, one `lars node` process, one route of 4 hosts
 * under steady calls from an agent in this process (swrr: the node judges).
 * Each trial stops the server (SIGTERM), starts it again on the same store
 * 6 s later, and measures from the moment JetStream is writable again (a KV
 * write of this process succeeds) until every partition is leased to the
 * node and a host that began to fail at that moment has been ejected.
 */
import { randomBytes } from 'node:crypto';
import { names as makeNames } from '../../schemas/subjects.ts';
import { startNatsServer, type NatsServer } from '../../src/nats/natsd.ts';
import { connectNats, type NatsConnection } from '../../src/nats/connect.ts';
import { createAgent, type Agent } from '../../src/agent/agent.ts';
import { Registry } from '../../src/registry/registry.ts';
import { ensureStreams } from '../../src/nats/streams.ts';
import { openTtlBucket } from '../../src/nats/buckets.ts';
import { startTraffic, type Traffic } from '../../test/helpers/traffic.ts';
import { epochMs, sleep } from '../_common.ts';
import { QUICK, envInt, logger, onTeardown } from '../_harness.ts';
import type { Metric } from '../lib.ts';
import { leaseOwners, startChildNode, until } from './_nodes.ts';

const log = logger('cluster');
const P = 8;
const LEASE_MS = 2000;
const OUTAGE_MS = 6000;
const TRIALS = envInt('BENCH_RECOVERY_TRIALS', QUICK ? 1 : 3);
const ROUTE: [number, number] = [620, 1];
const host = (i: number): string => `10.62.0.${i + 1}:9000`;

export async function benchRecovery(): Promise<Metric[]> {
  let server: NatsServer = await startNatsServer();
  onTeardown(() => server.stop());
  const nc: NatsConnection = await connectNats({ url: server.url, name: 'recovery-admin' });
  onTeardown(() => nc.close());
  const n = makeNames(`rc${randomBytes(3).toString('hex')}`);
  await ensureStreams(nc, n, { reports: { maxBytes: 2 ** 28 }, events: { maxBytes: 2 ** 26 } });
  const registry = await Registry.open(nc, n);
  await registry.addHosts(ROUTE[0], ROUTE[1], Array.from({ length: TRIALS + 3 }, (_, i) => ({ ip: host(i).split(':')[0]!, port: 9000, weight: 100 })), 'bench', { profile: 'default', params: { base_ejection_time: 600, max_ejection_percent: 90 } });
  const probe = await openTtlBucket(nc, `${n.prefix}_probe`, 0, 250);
  const node = startChildNode(server.url, n, P, 'rc-node', LEASE_MS);
  await until(async () => (await leaseOwners(nc, n, P)).size === P, 60_000, 'every partition leased', 100);
  const failing = new Set<string>();
  const agent: Agent = await createAgent({ servers: server.url, prefix: n.prefix, partitions: P, strategy: 'swrr', batchMaxDelayMs: 5 });
  onTeardown(() => agent.close());
  const traffic: Traffic = startTraffic(agent, ROUTE[0], ROUTE[1], (h) => ({ retcode: failing.has(h) ? 1 : 0, latencyMs: 2 }), { callsPerTick: 5, tickMs: 20 });
  onTeardown(async () => traffic.stop());
  const results: Array<{ ownedMs: number; ejectedMs: number }> = [];
  try {
    await sleep(2000);
    for (let t = 0; t < TRIALS; t++) {
      await server.stop();
      await sleep(OUTAGE_MS); // the fault: the server stays away this long
      server = await server.restart();
      let tw = 0;
      await until(
        async () => {
          try {
            await probe.put('k', new Uint8Array([t]));
            tw = epochMs();
            return true;
          } catch {
            return false;
          }
        },
        60_000,
        'JetStream writable',
        10,
      );
      failing.add(host(t));
      let owned = 0;
      let ejected = 0;
      await until(
        async () => {
          const now = epochMs();
          if (owned === 0) {
            const o = await leaseOwners(nc, n, P).catch(() => new Map<number, string>());
            if (o.size === P && [...o.values()].every((id) => id === 'rc-node')) owned = now;
          }
          if (ejected === 0 && (await agent.getRoute(ROUTE[0], ROUTE[1]))?.hosts.some((h) => `${h.ip}:${h.port}` === host(t) && h.state === 'overloaded')) ejected = now;
          return owned > 0 && ejected > 0;
        },
        60_000,
        `trial ${t + 1}: every partition owned and the failing host ejected`,
        10,
      );
      results.push({ ownedMs: Math.round(owned - tw), ejectedMs: Math.round(ejected - tw) });
      log(`recovery trial ${t + 1}: ${OUTAGE_MS / 1000} s outage; from JetStream writable, every partition owned after ${Math.round(owned - tw)} ms, a host failing from then on ejected after ${Math.round(ejected - tw)} ms`);
      await sleep(2000);
    }
  } finally {
    traffic.stop();
    node.kill('SIGKILL');
  }
  const worst = Math.max(...results.map((r) => Math.max(r.ownedMs, r.ejectedMs)));
  return [
    {
      name: 'recovery_after_nats_restart_ms',
      value: worst,
      unit: 'ms',
      target: '<= 3000',
      note: `one nats-server stopped and started on its store ${OUTAGE_MS / 1000} s later, one lars node (lease ${LEASE_MS} ms): from JetStream writable to every partition owned and a newly failing host ejected, worst of ${results.length} trials (${results.map((r) => `${r.ownedMs}/${r.ejectedMs}`).join(', ')} ms owned/ejected)`,
    },
  ];
}
