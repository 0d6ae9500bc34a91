/**
 * `lars agent` (the sidecar) metrics, read at scrape time: the agent's own
 * (picks, reports, routes followed: agent.ts), the NATS connection, and the
 * sidecar's two APIs (UDP datagrams, drops, replies; HTTP requests, reports,
 * streams, registrations) and its route budget. Nothing is counted twice:
 * every value comes from a `stats()` the components keep anyway.
 */
import type { NatsConnection } from '@nats-io/transport-node';
import type { Registry } from 'prom-client';
import type { SidecarStats } from './sidecar.ts';
import { registerAgentMetrics, type HasAgentStats } from '../agent/metrics.ts';
import { byLabel, counterFrom, type Sample } from '../metrics/collect.ts';
import type { Readiness } from '../metrics/http.ts';
import { registerConnectionMetrics, type ConnectionState } from '../metrics/nats.ts';

/** What the sidecar metrics read: a Sidecar (its agent and both APIs). */
export interface HasSidecarStats {
  readonly agent: HasAgentStats;
  stats(): SidecarStats;
}

export function registerSidecarMetrics(r: Registry, sidecar: HasSidecarStats, nc: NatsConnection, connection: ConnectionState): void {
  // the agent's stats, with the picks of the UDP threads when there are several
  registerAgentMetrics(r, {
    stats: () => {
      const a = sidecar.agent.stats();
      const t = sidecar.stats().threadPicks ?? 0;
      return t > 0 ? { ...a, picks: a.picks + t } : a;
    },
  });
  registerConnectionMetrics(r, nc, connection);
  const s = () => sidecar.stats();
  counterFrom(r, { name: 'lars_sidecar_udp_datagrams_total', help: "Datagrams received on Lars' UDP ports", read: () => s().udp?.datagrams ?? 0 });
  counterFrom<'request'>(r, {
    name: 'lars_sidecar_udp_requests_total',
    help: "Requests of Lars' UDP protocol acted on, by request (get_host, get_route, report)",
    labelNames: ['request'],
    read: (): Array<Sample<'request'>> => {
      const u = s().udp;
      if (!u) return [];
      return [
        [{ request: 'get_host' }, u.getHost],
        [{ request: 'get_route' }, u.getRoute],
        [{ request: 'report' }, u.reports],
      ];
    },
  });
  counterFrom(r, { name: 'lars_sidecar_udp_replies_total', help: 'UDP replies sent', read: () => s().udp?.replies ?? 0 });
  counterFrom<'kind'>(r, { name: 'lars_sidecar_udp_dropped_total', help: 'UDP datagrams dropped and requests not acted on, by kind', labelNames: ['kind'], read: () => byLabel('kind', s().udp?.bad ?? {}) });
  counterFrom(r, { name: 'lars_sidecar_udp_send_errors_total', help: 'UDP socket errors (a reply that could not be sent)', read: () => s().udp?.sendErrors ?? 0 });
  counterFrom(r, { name: 'lars_sidecar_http_requests_total', help: 'Requests to the HTTP/JSON API', read: () => s().http?.requests ?? 0 });
  counterFrom(r, { name: 'lars_sidecar_http_bad_requests_total', help: 'HTTP/JSON API requests answered with an error', read: () => s().http?.badRequests ?? 0 });
  counterFrom(r, { name: 'lars_sidecar_http_reports_total', help: 'Reports posted to the HTTP/JSON API', read: () => s().http?.reports ?? 0 });
  counterFrom(r, { name: 'lars_sidecar_http_streams_total', help: 'Route event streams opened on the HTTP/JSON API', read: () => s().http?.streams ?? 0 });
  counterFrom(r, { name: 'lars_sidecar_registrations_total', help: 'Self-registration heartbeats written for local services (POST /v1/register)', read: () => s().http?.registrations ?? 0 });
  counterFrom(r, { name: 'lars_sidecar_routes_refused_total', help: 'Requests refused because they would have made the sidecar follow more routes than --max-routes', read: () => s().routesRefused });
}

/** Ready while connected to NATS (picks from the cache go on without, but reports wait and routes do not change). */
export function sidecarReadiness(conn: ConnectionState): () => Readiness {
  return () => (conn.connected() ? { ready: true } : { ready: false, reason: 'not connected to NATS' });
}
