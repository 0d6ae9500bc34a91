/**
 * Prometheus metrics and health endpoints of the long-running processes:
 * `lars node --http <port>`, `lars sink --http <port>` and `lars agent
 * --http <port>` (src/cli/commands/agent.ts, from the same parts: it also serves
 * them on its API port) serve `/metrics`, `/healthz` and `/readyz` on one port
 * (docs/metrics.md lists every metric), on loopback unless `--http-host`
 * says otherwise. The port is bound before anything connects, so a port in
 * use fails the command at once. Metrics can be turned off (`--metrics
 * off`) while health stays served: then no listener is added to the node
 * and nothing is read at all.
 */
import type { NatsConnection } from '@nats-io/transport-node';
import type { Registry } from 'prom-client';
import type { Names } from '../../schemas/subjects.ts';
import type { PipelineName, Sink } from '../analytics/sink.ts';
import { UsageError } from '../lib/errors.ts';
import type { Logger } from '../lib/log.ts';
import type { RouteNode } from '../node/route-node.ts';
import { createRegistry } from '../metrics/collect.ts';
import { startMetricsServer, type ExtraHandler, type MetricsServer, type Readiness } from '../metrics/http.ts';
import { trackConnection, type ConnectionState } from '../metrics/nats.ts';
import { nodeReadiness, registerNodeMetrics } from '../node/metrics.ts';
import { PendingReader, registerSinkMetrics, sinkConsumers, sinkReadiness, DEFAULT_READY_MAX_PENDING } from '../analytics/metrics.ts';

export { createRegistry, counterFrom, gaugeFrom, type RegistryOptions } from '../metrics/collect.ts';
export { startMetricsServer, healthHandler, HEALTH_PATHS, type ExtraHandler, type MetricsServer, type MetricsServerOptions, type Readiness } from '../metrics/http.ts';
export { trackConnection, registerConnectionMetrics, type ConnectionState } from '../metrics/nats.ts';
export { registerNodeMetrics, nodeReadiness, READY_TAKE_GRACE_MS, type NodeMetricsOptions, type NodeReadinessInput } from '../node/metrics.ts';
export { registerSinkMetrics, sinkReadiness, sinkConsumers, PendingReader, DEFAULT_READY_MAX_PENDING, type SinkConsumer } from '../analytics/metrics.ts';
export { registerAgentMetrics, type HasAgentStats } from '../agent/metrics.ts';
export { registerSidecarMetrics, sidecarReadiness, type HasSidecarStats } from '../sidecar/metrics.ts';
export { RouteBoard, OTHER_ROUTES, DEFAULT_TOP_ROUTES } from '../metrics/routes.ts';

/** The flags `lars node`, `lars sink` and `lars agent` take for their HTTP endpoints. */
export const HTTP_FLAGS = {
  http: { help: 'serve /metrics, /healthz and /readyz on this port of --http-host (0: any free port, logged)', placeholder: 'port', defaultText: 'off' },
  metrics: { help: 'with --http: Prometheus metrics on or off (health is served either way)', choices: ['on', 'off'] as const, defaultText: 'on' },
};

export interface HttpSettings {
  port: number;
  metrics: boolean;
}

/** `--http` and `--metrics` checked; undefined when `--http` is absent. */
export function httpSettings(flags: Readonly<Record<string, unknown>>): HttpSettings | undefined {
  const port = flags['http'];
  const metrics = flags['metrics'];
  if (metrics !== undefined && metrics !== 'on' && metrics !== 'off') throw new UsageError(`--metrics takes on or off, got ${JSON.stringify(metrics)}`);
  if (port === undefined) {
    if (metrics !== undefined) throw new UsageError('--metrics needs --http <port>');
    return undefined;
  }
  if (typeof port !== 'string' || !/^\d{1,5}$/.test(port) || Number(port) > 65535) throw new UsageError(`--http takes a port number (0-65535), got ${JSON.stringify(port)}`);
  return { port: Number(port), metrics: metrics !== 'off' };
}

export interface ProcessHttp<T> {
  readonly port: number;
  /** `http://host:port/`. */
  readonly url: string;
  readonly registry: Registry | undefined;
  /** Serves further paths on the same port (the web console). */
  mount(h: ExtraHandler): void;
  /** The process' NATS connection, once open (when it was not given at the start). */
  connect(nc: NatsConnection): void;
  /** Metrics and readiness of the component, once started. */
  attach(component: T): Promise<void>;
  close(): Promise<void>;
}

interface Common {
  settings: HttpSettings;
  /** Default loopback; `--http-host` (LARS_HTTP_HOST). */
  host?: string;
  /** The connection, or none yet: the port is served (not ready) until `connect`. */
  nc?: NatsConnection;
  log: Logger;
  /** Labels on every sample (besides Prometheus' own `instance` and `job`). */
  labels?: Record<string, string>;
}

type Attached = { ready: () => Readiness | Promise<Readiness>; detach?: () => void };

const NOT_CONNECTED_YET: Readiness = { ready: false, reason: 'not connected to NATS yet' };

async function serve<T>(c: Common, onAttach: (component: T, registry: Registry | undefined, nc: NatsConnection, conn: ConnectionState) => Promise<Attached>, notYet: string): Promise<ProcessHttp<T>> {
  const registry = c.settings.metrics ? createRegistry({ labels: c.labels }) : undefined;
  let link: { nc: NatsConnection; conn: ConnectionState } | undefined;
  let ready: () => Readiness | Promise<Readiness> = () => (link ? { ready: false, reason: notYet } : NOT_CONNECTED_YET);
  const server: MetricsServer = await startMetricsServer({ port: c.settings.port, host: c.host, registry, ready: () => ready(), log: c.log });
  const connect = (nc: NatsConnection): void => {
    if (!link) link = { nc, conn: trackConnection(nc) };
  };
  if (c.nc) connect(c.nc);
  let detach: (() => void) | undefined;
  return {
    port: server.port,
    url: server.url,
    registry,
    mount: (h) => server.mount(h),
    connect,
    async attach(component) {
      if (!link) throw new Error('attach before connect: the HTTP endpoints have no NATS connection');
      const a = await onAttach(component, registry, link.nc, link.conn);
      ready = a.ready;
      detach = a.detach;
    },
    async close() {
      detach?.();
      link?.conn.stop();
      await server.close();
    },
  };
}

/** Health (at once) and metrics (after attach) of `lars node`. */
export function serveNodeHttp(c: Common & { topRoutes?: number }): Promise<ProcessHttp<RouteNode>> {
  return serve<RouteNode>(
    c,
    async (node, registry, nc, conn) => {
      const detach = registry ? await registerNodeMetrics({ registry, node, nc, connection: conn, topRoutes: c.topRoutes }) : undefined;
      return { ready: nodeReadiness(conn, { started: () => true, health: () => node.ownershipHealth(), served: () => node.servedPartitions().length }), detach };
    },
    'routes loading',
  );
}

/** Health (at once) and metrics (after attach) of `lars sink`. */
export function serveSinkHttp(c: Common & { names: Names; pipelines?: readonly PipelineName[]; durablePrefix?: string; readyMaxPending?: number }): Promise<ProcessHttp<Sink>> {
  return serve<Sink>(
    c,
    async (sink, registry, nc, conn) => {
      const consumers = sinkConsumers(c.names, c.pipelines, c.durablePrefix);
      const pending = new PendingReader(nc, consumers);
      if (registry) registerSinkMetrics({ registry, sink, nc, connection: conn, consumers, pending });
      return { ready: sinkReadiness(conn, pending, sink, c.readyMaxPending ?? DEFAULT_READY_MAX_PENDING) };
    },
    'consumers not bound yet',
  );
}

