/**
 * `lars xds` metrics, read at scrape time from the server's own counters
 * (streams, requests, ACKs, NACKs, responses, routes), and its readiness:
 * connected to NATS with the first full view of the routes in.
 */
import type { NatsConnection } from '@nats-io/transport-node';
import type { Registry } from 'prom-client';
import { byLabel, counterFrom, gaugeFrom } from '../metrics/collect.ts';
import type { Readiness } from '../metrics/http.ts';
import { registerConnectionMetrics, type ConnectionState } from '../metrics/nats.ts';
import type { XdsStats } from './server.ts';

/** What the metrics read: an XdsServer (only its figures: no gRPC is loaded for this). */
export interface HasXdsStats {
  stats(): XdsStats;
  ready(): boolean;
}

export function registerXdsMetrics(r: Registry, xds: HasXdsStats, nc?: NatsConnection, connection?: ConnectionState): void {
  if (nc && connection) registerConnectionMetrics(r, nc, connection);
  const s = () => xds.stats();
  gaugeFrom(r, { name: 'lars_xds_streams', help: 'ADS streams open (connected xDS clients)', read: () => s().streams });
  counterFrom(r, { name: 'lars_xds_streams_opened_total', help: 'ADS streams opened', read: () => s().streamsOpened });
  gaugeFrom(r, { name: 'lars_xds_routes', help: 'Routes served (each a listener, route configuration, cluster and load assignment)', read: () => s().routes });
  counterFrom(r, { name: 'lars_xds_route_updates_total', help: 'Route states applied (each handed to the streams subscribed to the route)', read: () => s().routeUpdates });
  counterFrom(r, { name: 'lars_xds_requests_total', help: 'DiscoveryRequests received', read: () => s().requests });
  counterFrom(r, { name: 'lars_xds_acks_total', help: 'Responses clients accepted (ACK)', read: () => s().acks });
  counterFrom(r, { name: 'lars_xds_nacks_total', help: 'Responses clients refused (NACK): each logged, the client keeps its last accepted resources', read: () => s().nacks });
  counterFrom(r, { name: 'lars_xds_stale_requests_total', help: 'Requests ignored for a nonce that was not the last sent', read: () => s().stale });
  counterFrom(r, { name: 'lars_xds_responses_total', help: 'DiscoveryResponses sent', read: () => s().responses });
  counterFrom(r, { name: 'lars_xds_resources_sent_total', help: 'Resources sent in responses', read: () => s().resourcesSent });
  counterFrom(r, { name: 'lars_xds_lrs_reports_total', help: 'Load reports (LRS) received from xDS clients', read: () => s().lrs.reports });
  counterFrom<'result'>(r, {
    name: 'lars_xds_lrs_calls_total',
    help: 'Calls xDS clients said they made (LRS), by result: succeeded, failed, dropped',
    labelNames: ['result'],
    read: () => [
      [{ result: 'succeeded' }, s().lrs.succeeded],
      [{ result: 'failed' }, s().lrs.failed],
      [{ result: 'dropped' }, s().lrs.dropped],
    ],
  });
  counterFrom<'kind'>(r, {
    name: 'lars_xds_rejected_total',
    help: 'Requests dropped, by kind (unknown_type, malformed, refused_name)',
    labelNames: ['kind'],
    read: () => [...byLabel('kind', s().rejected), [{ kind: 'malformed' }, s().malformed], [{ kind: 'refused_name' }, s().refusedNames]],
  });
}

export function xdsReadiness(conn: ConnectionState, xds: HasXdsStats): () => Readiness {
  return () => (!conn.connected() ? { ready: false, reason: 'not connected to NATS' } : xds.ready() ? { ready: true } : { ready: false, reason: 'routes loading' });
}
