/**
 * One small HTTP server per process for Prometheus and orchestrators:
 * - `GET /metrics`: the registry in the Prometheus text format (404 when metrics are off);
 * - `GET /healthz`: 200 whenever the event loop turns (this answer is the proof);
 * - `GET /readyz`: 200 when the process can do its work, else 503 with a JSON reason.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Registry } from 'prom-client';
import { silentLogger, type Logger } from '../log.ts';

export type Readiness = { ready: true } | { ready: false; reason: string };

export interface MetricsServerOptions {
  /** Port to listen on; 0 picks a free one. */
  port: number;
  /** Default all interfaces (a scrape comes from another host). */
  host?: string;
  /** Absent: no `/metrics` (metrics turned off); health is served either way. */
  registry?: Registry;
  ready: () => Readiness | Promise<Readiness>;
  log?: Logger;
}

/** A handler for further paths (the web console); resolves false for a path it does not serve. */
export type ExtraHandler = (req: IncomingMessage, res: ServerResponse) => Promise<boolean>;

export interface MetricsServer {
  readonly port: number;
  /** Serves every other path (any method) with `h`, tried before the 404. */
  mount(h: ExtraHandler): void;
  close(): Promise<void>;
}

function send(res: ServerResponse, status: number, type: string, body: string): void {
  res.writeHead(status, { 'content-type': type, 'cache-control': 'no-store' });
  res.end(body);
}

const JSON_TYPE = 'application/json; charset=utf-8';

export async function startMetricsServer(opts: MetricsServerOptions): Promise<MetricsServer> {
  const log = (opts.log ?? silentLogger()).child({ mod: 'http' });
  const started = Date.now();
  let extra: ExtraHandler | undefined;
  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const path = (req.url ?? '/').split('?')[0];
    const own = path === '/metrics' || path === '/healthz' || path === '/readyz';
    if (!own && extra && (await extra(req, res))) return;
    if (req.method !== 'GET' && req.method !== 'HEAD') return send(res, 405, JSON_TYPE, JSON.stringify({ error: 'GET only' }));
    switch (path) {
      case '/metrics':
        if (!opts.registry) return send(res, 404, JSON_TYPE, JSON.stringify({ error: 'metrics are turned off' }));
        return send(res, 200, opts.registry.contentType, await opts.registry.metrics());
      case '/healthz':
        return send(res, 200, JSON_TYPE, JSON.stringify({ status: 'alive', uptimeS: Math.round((Date.now() - started) / 1000) }));
      case '/readyz': {
        const r = await opts.ready();
        return send(res, r.ready ? 200 : 503, JSON_TYPE, JSON.stringify(r.ready ? { status: 'ready' } : { status: 'not ready', reason: r.reason }));
      }
      default:
        return send(res, 404, JSON_TYPE, JSON.stringify({ error: 'not found', paths: ['/metrics', '/healthz', '/readyz'] }));
    }
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
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port, opts.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;
  log.info({ port, metrics: opts.registry !== undefined }, 'serving /metrics, /healthz and /readyz');
  return {
    port,
    mount: (h) => void (extra = h),
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
