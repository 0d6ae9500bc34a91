/**
 * A process of subscribed agents for the `core` benchmark
 * (route_propagation_*, ejection_*), run by bench/core/agent-pass.ts. Each agent has its
 * own NATS connection, as separate services would. Every agent follows the
 * propagation route and every ejection route, and records (epoch ms):
 *  - each version of the propagation route it comes to hold (watchRoute);
 *  - the first version of an ejection route in which a host is ejected
 *    (state overloaded, pick_weight 0), then samples picks on that route to
 *    check the host is no longer picked.
 * Records are buffered and sent to the parent after a quiet moment, so that
 * reporting does not delay the agents still handling the same change.
 */
import type { NatsConnection } from '@nats-io/transport-node';
import { createAgent, connectNats, type Agent, type RouteState } from '../src/index.ts';
import { childConfig, epochMs, exitWithParent, toParent, type AgentsConfig, type EjectRecord, type FromAgents, type ToAgents, type VersionRecord } from './_common.ts';

const cfg = childConfig<AgentsConfig>();
const agents: Agent[] = [];
/** The connection the agents share when cfg.sharedConnection (closed last). */
const conn: { shared?: NatsConnection } = {};
let closing = false;

async function closeAll(): Promise<void> {
  if (closing) return;
  closing = true;
  await Promise.all(agents.map((a) => a.close().catch(() => undefined)));
  await conn.shared?.close().catch(() => undefined);
}
exitWithParent(closeAll);

function send(m: FromAgents): void {
  toParent(m);
}

let buf: Array<VersionRecord | EjectRecord> = [];
let timer: ReturnType<typeof setTimeout> | undefined;
function push(r: VersionRecord | EjectRecord): void {
  buf.push(r);
  if (timer) return;
  timer = setTimeout(() => {
    timer = undefined;
    const items = buf;
    buf = [];
    send({ type: 'rec', items });
  }, 15);
}

const t0 = epochMs();
const shared = cfg.sharedConnection ? await connectNats({ url: cfg.url, name: `bench-agents-${cfg.first}` }) : undefined;
conn.shared = shared;
for (let i = 0; i < cfg.count; i++) {
  const common = { prefix: cfg.prefix, partitions: cfg.partitions, agentId: `bench-agent-${cfg.first + i}` };
  agents.push(await (shared ? createAgent({ nc: shared, ...common }) : createAgent({ servers: cfg.url, ...common })));
}
const routes: Array<[number, number]> = [cfg.propRoute, ...cfg.ejectRoutes];
await Promise.all(agents.map((a) => a.prepare(routes)));

agents.forEach((a, i) => {
  const idx = cfg.first + i;
  const [pm, pc] = cfg.propRoute;
  a.watchRoute(pm, pc, (s: RouteState) => {
    push(['v', idx, pm, pc, s.version, epochMs()]);
  });
  for (const [m, c] of cfg.ejectRoutes) {
    const seen = new Set<string>();
    a.watchRoute(m, c, (s: RouteState) => {
      for (const h of s.hosts) {
        if (h.state !== 'overloaded' || h.pick_weight !== 0) continue;
        const key = `${h.ip}:${h.port}`;
        if (seen.has(key)) continue;
        const t = epochMs();
        seen.add(key);
        let picked = 0;
        for (let j = 0; j < cfg.pickSample; j++) {
          const p = a.pick(m, c);
          if (p.ok && p.ip === h.ip && p.port === h.port) picked++;
        }
        push(['e', idx, m, c, key, s.version, t, picked]);
      }
    });
  }
});
// Every subscription is registered at the server before the parent starts changing routes.
await Promise.all(agents.map((a) => a.flush()));
send({ type: 'ready', agents: agents.length, connectMs: epochMs() - t0 });

process.on('message', (m: ToAgents) => {
  if (m.type === 'cpu') {
    const u = process.cpuUsage();
    send({ type: 'cpu', userUs: u.user, systemUs: u.system });
    return;
  }
  if (m.type !== 'stop') return;
  void closeAll().then(() => {
    send({ type: 'stopped' });
    process.disconnect?.();
  });
});
