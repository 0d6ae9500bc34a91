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
import { HttpError } from '../http/error.ts';
import { sendError, sendJson } from '../http/json.ts';

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

/** The Prometheus text. */
function sendText(res: ServerResponse, type: string, body: string): void {
  res.writeHead(200, { 'content-type': type, 'cache-control': 'no-store' });
  res.end(body);
}

const GET_ONLY = 'GET only';

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
    // Answered here, not thrown: a server that mounts this handler answers in its own shape.
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      sendError(res, new HttpError(405, GET_ONLY));
      return true;
    }
    if (path === '/metrics') {
      if (!opts.registry) sendError(res, new HttpError(404, 'metrics are turned off'));
      else sendText(res, opts.registry.contentType, await opts.registry.metrics());
    } else if (path === '/healthz') {
      sendJson(res, 200, { status: 'alive', uptimeS: Math.round((Date.now() - started) / 1000) });
    } else {
      const r = await opts.ready();
      sendJson(res, r.ready ? 200 : 503, r.ready ? { status: 'ready' } : { status: 'not ready', reason: r.reason });
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
    if (req.method !== 'GET' && req.method !== 'HEAD') return sendError(res, new HttpError(405, GET_ONLY));
    return sendJson(res, 404, { error: 'not found', paths: HEALTH_PATHS });
  };
  const server = createServer((req, res) => {
    handle(req, res).catch((err: unknown) => {
      log.error({ err, url: req.url }, 'http request failed');
      if (!res.headersSent) sendError(res, new HttpError(500, 'internal error'));
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
