/**
 * Prometheus metrics and health endpoints of the long-running processes:
 * `lars node --http <port>` and `lars sink --http <port>` serve `/metrics`,
 * `/healthz` and `/readyz` on one port (docs/metrics.md lists every metric).
 * Metrics can be turned off (`--metrics off`) while health stays served:
 * then no listener is added to the node and nothing is read at all.
 */
import type { NatsConnection } from '@nats-io/transport-node';
import type { Registry } from 'prom-client';
import type { Names } from '../../schemas/subjects.ts';
import type { PipelineName, Sink } from '../analytics/sink.ts';
import { UsageError } from '../errors.ts';
import type { Logger } from '../log.ts';
import type { RouteNode } from '../node/route-node.ts';
import { createRegistry } from './collect.ts';
import { startMetricsServer, type ExtraHandler, type MetricsServer, type Readiness } from './http.ts';
import { trackConnection, type ConnectionState } from './nats.ts';
import { nodeReadiness, registerNodeMetrics } from './node.ts';
import { PendingReader, registerSinkMetrics, sinkConsumers, sinkReadiness, DEFAULT_READY_MAX_PENDING } from './sink.ts';

export { createRegistry, counterFrom, gaugeFrom, type RegistryOptions } from './collect.ts';
export { startMetricsServer, type ExtraHandler, type MetricsServer, type MetricsServerOptions, type Readiness } from './http.ts';
export { trackConnection, registerConnectionMetrics, type ConnectionState } from './nats.ts';
export { registerNodeMetrics, nodeReadiness, READY_TAKE_GRACE_MS, type NodeMetricsOptions, type NodeReadinessInput } from './node.ts';
export { registerSinkMetrics, sinkReadiness, sinkConsumers, PendingReader, DEFAULT_READY_MAX_PENDING, type SinkConsumer } from './sink.ts';
export { registerAgentMetrics, type HasAgentStats } from './agent.ts';
export { RouteBoard, OTHER_ROUTES, DEFAULT_TOP_ROUTES } from './routes.ts';

/** The flags `lars node` and `lars sink` take for their HTTP endpoints. */
export const HTTP_FLAGS = {
  http: { help: 'serve /metrics, /healthz and /readyz on this port (0: any free port, logged)', placeholder: 'port', defaultText: 'off' },
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
  readonly registry: Registry | undefined;
  /** Serves further paths on the same port (the web console). */
  mount(h: ExtraHandler): void;
  /** Metrics and readiness of the component, once started. */
  attach(component: T): Promise<void>;
  close(): Promise<void>;
}

interface Common {
  settings: HttpSettings;
  nc: NatsConnection;
  log: Logger;
  /** Labels on every sample (besides Prometheus' own `instance` and `job`). */
  labels?: Record<string, string>;
}

type Attached = { ready: () => Readiness | Promise<Readiness>; detach?: () => void };

async function serve<T>(c: Common, onAttach: (component: T, registry: Registry | undefined, conn: ConnectionState) => Promise<Attached>, notYet: string): Promise<ProcessHttp<T>> {
  const registry = c.settings.metrics ? createRegistry({ labels: c.labels }) : undefined;
  const conn = trackConnection(c.nc);
  let ready: () => Readiness | Promise<Readiness> = () => ({ ready: false, reason: notYet });
  let server: MetricsServer;
  try {
    server = await startMetricsServer({ port: c.settings.port, registry, ready: () => ready(), log: c.log });
  } catch (err) {
    conn.stop();
    throw err;
  }
  let detach: (() => void) | undefined;
  return {
    port: server.port,
    registry,
    mount: (h) => server.mount(h),
    async attach(component) {
      const a = await onAttach(component, registry, conn);
      ready = a.ready;
      detach = a.detach;
    },
    async close() {
      detach?.();
      conn.stop();
      await server.close();
    },
  };
}

/** Health (at once) and metrics (after attach) of `lars node`. */
export function serveNodeHttp(c: Common & { topRoutes?: number }): Promise<ProcessHttp<RouteNode>> {
  return serve<RouteNode>(
    c,
    async (node, registry, conn) => {
      const detach = registry ? await registerNodeMetrics({ registry, node, nc: c.nc, connection: conn, topRoutes: c.topRoutes }) : undefined;
      return { ready: nodeReadiness(conn, { started: () => true, health: () => node.ownershipHealth(), served: () => node.servedPartitions().length }), detach };
    },
    'routes loading',
  );
}

/** Health (at once) and metrics (after attach) of `lars sink`. */
export function serveSinkHttp(c: Common & { names: Names; pipelines?: readonly PipelineName[]; durablePrefix?: string; readyMaxPending?: number }): Promise<ProcessHttp<Sink>> {
  return serve<Sink>(
    c,
    async (sink, registry, conn) => {
      const consumers = sinkConsumers(c.names, c.pipelines, c.durablePrefix);
      const pending = new PendingReader(c.nc, consumers);
      if (registry) registerSinkMetrics({ registry, sink, nc: c.nc, connection: conn, consumers, pending });
      return { ready: sinkReadiness(conn, pending, () => sink.bound(), c.readyMaxPending ?? DEFAULT_READY_MAX_PENDING) };
    },
    'consumers not bound yet',
  );
}
