/**
 * Agent (and sidecar) metrics, read at scrape time from `agent.stats()`:
 * picking and reporting add no metrics work. A service exposes them with
 * its own registry, or with `startMetricsServer` from this module's entry.
 */
import type { Registry } from 'prom-client';
import type { AgentStats } from './agent.ts';
import { byLabel, counterFrom, gaugeFrom } from '../metrics/collect.ts';

/** What the agent metrics read: an Agent, or anything with the same stats (a sidecar). */
export interface HasAgentStats {
  stats(): AgentStats;
}

export function registerAgentMetrics(r: Registry, agent: HasAgentStats): void {
  const s = () => agent.stats();
  counterFrom(r, { name: 'lars_agent_picks_total', help: 'Hosts picked (getHost answers with a host)', read: () => s().picks });
  counterFrom(r, { name: 'lars_agent_reports_total', help: 'Call results accepted by report()', read: () => s().reports });
  counterFrom(r, { name: 'lars_agent_report_batches_total', help: 'Report batches made', read: () => s().batches });
  counterFrom(r, { name: 'lars_agent_report_batches_acked_total', help: 'Report batches acknowledged by JetStream (acked delivery)', read: () => s().ackedBatches });
  counterFrom(r, { name: 'lars_agent_report_batches_retried_total', help: 'Report batch publishes after the first (acked delivery)', read: () => s().retriedBatches });
  gaugeFrom(r, { name: 'lars_agent_pending_reports', help: 'Reports buffered or not yet acknowledged', read: () => s().pendingReports });
  counterFrom(r, { name: 'lars_agent_dropped_reports_total', help: 'Reports given up: over the pending bound, refused by the client, or unacknowledged at close', read: () => s().droppedReports });
  gaugeFrom(r, { name: 'lars_agent_routes', help: 'Routes the agent follows', read: () => s().routes });
  counterFrom(r, { name: 'lars_agent_route_updates_total', help: 'Route states applied', read: () => s().routeUpdates });
  counterFrom(r, { name: 'lars_agent_route_updates_stale_total', help: 'Route states ignored as older than the one held', read: () => s().staleUpdates });
  counterFrom(r, { name: 'lars_agent_route_updates_held_total', help: 'Route states not applied because they left no pickable host (the last good state was kept)', read: () => s().heldEmptyUpdates });
  counterFrom(r, { name: 'lars_agent_resyncs_total', help: 'Route re-reads from the routes KV bucket (after a reconnect or a version gap)', read: () => s().resyncs });
  counterFrom(r, { name: 'lars_agent_calls_total', help: 'Logical calls started by call()', read: () => s().calls.calls });
  counterFrom<'kind'>(r, {
    name: 'lars_agent_call_attempts_total',
    help: 'Attempts of call(), by kind (first, retry, hedge)',
    labelNames: ['kind'],
    read: () => {
      const c = s().calls;
      return byLabel('kind', { first: c.first, retry: c.retry, hedge: c.hedge });
    },
  });
  counterFrom<'reason'>(r, {
    name: 'lars_agent_call_stops_total',
    help: 'Calls of call() that stopped without a result, by reason (budget, deadline, shed, no_host, attempts, not_retriable, aborted)',
    labelNames: ['reason'],
    read: () => byLabel('reason', s().calls.stops),
  });
  counterFrom<'kind'>(r, { name: 'lars_agent_rejected_total', help: 'Inbound route messages rejected, by kind', labelNames: ['kind'], read: () => byLabel('kind', s().rejects) });
}
