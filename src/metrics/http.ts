/**
 * One small HTTP server per process for Prometheus and orchestrators:
 * - `GET /metrics`: the registry in the Prometheus text format (404 when metrics are off);
 * - `GET /healthz`: 200 whenever the event loop turns (this answer is the proof);
 * - `GET /readyz`: 200 when the process can do its work, else 503 with a JSON reason.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { Registry } from 'prom-client';
import { listen, urlOf } from '../http/listen.ts';
import { silentLogger, type Logger } from '../lib/log.ts';

export type Readiness = { ready: true } | { ready: false; reason: string };

export interface MetricsServerOptions {
  /** Port to listen on; 0 picks a free one. */
  port: number;
  /** Default loopback (127.0.0.1): `--http-host` (LARS_HTTP_HOST) opens it to others, e.g. 0.0.0.0 for a scrape from another host. */
  host?: string;
  /** The flag that sets the port, named when it is taken (default `--http`). */
  portFlag?: string;
  /** Absent: no `/metrics` (metrics turned off); health is served either way. */
  registry?: Registry;
  ready: () => Readiness | Promise<Readiness>;
  log?: Logger;
}

/** A handler for further paths (the web console); resolves false for a path it does not serve. */
export type ExtraHandler = (req: IncomingMessage, res: ServerResponse) => Promise<boolean>;

export interface MetricsServer {
  readonly port: number;
  /** The bound address. */
  readonly host: string;
  /** `http://host:port/`. */
  readonly url: string;
  /** Serves every other path (any method) with `h`, tried before the 404. */
  mount(h: ExtraHandler): void;
  close(): Promise<void>;
}

function send(res: ServerResponse, status: number, type: string, body: string): void {
  res.writeHead(status, { 'content-type': type, 'cache-control': 'no-store' });
  res.end(body);
}

const JSON_TYPE = 'application/json; charset=utf-8';

/** The three paths this module serves. */
export const HEALTH_PATHS = ['/metrics', '/healthz', '/readyz'] as const;

/**
 * `/metrics`, `/healthz` and `/readyz` as a handler; resolves false for any
 * other path. Another server (the sidecar's API) mounts it as it is.
 */
export function healthHandler(opts: Pick<MetricsServerOptions, 'registry' | 'ready'>): ExtraHandler {
  const started = Date.now();
  return async (req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (path !== '/metrics' && path !== '/healthz' && path !== '/readyz') return false;
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      send(res, 405, JSON_TYPE, JSON.stringify({ error: 'GET only' }));
      return true;
    }
    if (path === '/metrics') {
      if (!opts.registry) send(res, 404, JSON_TYPE, JSON.stringify({ error: 'metrics are turned off' }));
      else send(res, 200, opts.registry.contentType, await opts.registry.metrics());
    } else if (path === '/healthz') {
      send(res, 200, JSON_TYPE, JSON.stringify({ status: 'alive', uptimeS: Math.round((Date.now() - started) / 1000) }));
    } else {
      const r = await opts.ready();
      send(res, r.ready ? 200 : 503, JSON_TYPE, JSON.stringify(r.ready ? { status: 'ready' } : { status: 'not ready', reason: r.reason }));
    }
    return true;
  };
}

export async function startMetricsServer(opts: MetricsServerOptions): Promise<MetricsServer> {
  const log = (opts.log ?? silentLogger()).child({ mod: 'http' });
  const health = healthHandler(opts);
  let extra: ExtraHandler | undefined;
  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    if (await health(req, res)) return;
    if (extra && (await extra(req, res))) return;
    if (req.method !== 'GET' && req.method !== 'HEAD') return send(res, 405, JSON_TYPE, JSON.stringify({ error: 'GET only' }));
    return send(res, 404, JSON_TYPE, JSON.stringify({ error: 'not found', paths: HEALTH_PATHS }));
  };
  const server = createServer((req, res) => {
    handle(req, res).catch((err: unknown) => {
      log.error({ err, url: req.url }, 'http request failed');
      if (!res.headersSent) send(res, 500, JSON_TYPE, JSON.stringify({ error: 'internal error' }));
      else res.destroy();
    });
  });
  // Scrapers keep connections alive; close() must not wait for them.
  server.keepAliveTimeout = 5_000;
  const addr = await listen(server, { port: opts.port, host: opts.host, portFlag: opts.portFlag ?? '--http' });
  const url = urlOf(addr);
  log.info({ port: addr.port, host: addr.address, metrics: opts.registry !== undefined }, `serving ${opts.registry ? '/metrics, ' : ''}/healthz and /readyz on ${url}`);
  return {
    port: addr.port,
    host: addr.address,
    url,
    mount: (h) => void (extra = h),
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
