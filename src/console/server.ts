/**
 * The console's HTTP side: the page (static files, no build step), a JSON
 * API over `ConsoleBackend`, a server-sent-event stream per route, and the
 * operator actions behind a bearer token. Served by `lars console`, or by a
 * route node's `--http` port next to `/metrics`. With `readAuth`
 * (`--console-auth all`) the token guards reading too: every `/api/` path
 * wants it, as the bearer header or the page's `lars_console_token` cookie
 * (an EventSource cannot send headers); actions want the header only, so a
 * cookie alone never acts. The page's static files carry no data and are
 * served to anyone.
 *
 *   GET  /                                  the page
 *   GET  /api/routes                        every route, worst first
 *   GET  /api/routes/<m>/<c>                one route: every host with state, reason, figures, share, origin
 *   GET  /api/routes/<m>/<c>/stream         the same, live (events `route` and `transition`)
 *   GET  /api/routes/<m>/<c>/series?host=ip:port&minutes=60   calls, errors, p50/p99 over time, with state marks
 *   GET  /api/routes/<m>/<c>/audit[?host=ip:port]             transitions, newest first
 *   GET  /api/routes/<m>/<c>/callers        callers of the route, last hour
 *   GET  /api/stats/<kind>?from=&at=&window=&limit=&route=   a `lars stats` question (times in ms)
 *   POST /api/routes/<m>/<c>/hosts/<ip:port>/<drain|undrain|eject|clear|weight>   {by, weight?, dryRun?, force?}
 *        a drain or eject of the route's last healthy hosts (or into panic): 409 {error, code, consequence} until sent with force: true
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { isUint32 } from '../../schemas/subjects.ts';
import { ConfirmationRequiredError, LarsError } from '../lib/errors.ts';
import { silentLogger, type Logger } from '../lib/log.ts';
import { startMetricsServer, type Readiness } from '../metrics/http.ts';
import { STATS, isStatsKind, parseRouteArg, runStats, type StatsParams } from '../analytics/stats.ts';
import { actor, isHostAction, parseHostAddr, parseWeight } from '../admin/host-actions.ts';
import { HttpError } from '../http/error.ts';
import { readJsonBody } from '../http/body.ts';
import { SseChannel } from '../http/sse.ts';
import { sendError, sendJson } from '../http/json.ts';
import { auditTrail, hostSeries, type RouteRef } from './queries.ts';
import type { ConsoleBackend } from './backend.ts';

export interface ConsoleHandlerOptions {
  backend: ConsoleBackend;
  /** Operator actions need `Authorization: Bearer <token>`; absent: actions are off. */
  token?: string;
  /** Reading needs the token too (`--console-auth all`): the bearer header or the `lars_console_token` cookie. */
  readAuth?: boolean;
  /** Why analytics is off, shown on the page (absent with an engine). */
  analyticsOff?: string;
  log?: Logger;
  now?: () => number;
}

/** A request handler; resolves false for a path it does not serve. */
export type ConsoleHandler = (req: IncomingMessage, res: ServerResponse) => Promise<boolean>;

const MAX_BODY = 4096;
const SSE_PING_MS = 15_000;

/** The page's files, beside this module (src/console/assets in a checkout, dist/src/console/assets once built). */
function assetsDir(): string {
  const d = join(dirname(fileURLToPath(import.meta.url)), 'assets');
  if (!existsSync(join(d, 'index.html'))) throw new Error(`the console's page is missing: ${d}/index.html (npm run build copies it)`);
  return d;
}

const ASSETS: Record<string, { file: () => string; type: string }> = {
  '/': { file: () => join(assetsDir(), 'index.html'), type: 'text/html; charset=utf-8' },
  '/app.js': { file: () => join(assetsDir(), 'app.js'), type: 'text/javascript; charset=utf-8' },
  '/app.css': { file: () => join(assetsDir(), 'app.css'), type: 'text/css; charset=utf-8' },
  '/vendor/uplot.js': { file: () => createRequire(import.meta.url).resolve('uplot/dist/uPlot.iife.min.js'), type: 'text/javascript; charset=utf-8' },
  '/vendor/uplot.css': { file: () => createRequire(import.meta.url).resolve('uplot/dist/uPlot.min.css'), type: 'text/css; charset=utf-8' },
};

/** The cookie the page keeps the token in when reading needs it (SameSite=Strict: other sites' pages never send it). */
export const TOKEN_COOKIE = 'lars_console_token';

/** One cookie's value from the request, URL-decoded. */
function cookie(req: IncomingMessage, name: string): string | undefined {
  for (const part of (req.headers.cookie ?? '').split(';')) {
    const i = part.indexOf('=');
    if (i > 0 && part.slice(0, i).trim() === name) {
      try {
        return decodeURIComponent(part.slice(i + 1).trim());
      } catch {
        return undefined;
      }
    }
  }
  return undefined;
}

function digest(s: string): Buffer {
  return createHash('sha256').update(s).digest();
}

function routeRef(m: string, c: string): RouteRef {
  const modid = Number(m);
  const cmdid = Number(c);
  if (!/^\d{1,10}$/.test(m) || !/^\d{1,10}$/.test(c) || !isUint32(modid) || !isUint32(cmdid)) throw new HttpError(400, `route must be two uint32 numbers, got ${m}/${c}`);
  return { modid, cmdid };
}

function hostParam(u: URL, required: boolean): { ip: string; port: number } | undefined {
  const h = u.searchParams.get('host');
  if (h === null || h === '') {
    if (required) throw new HttpError(400, 'host=ip:port is required');
    return undefined;
  }
  try {
    return parseHostAddr(h);
  } catch (err) {
    throw new HttpError(400, (err as Error).message);
  }
}

export function createConsoleHandler(o: ConsoleHandlerOptions): ConsoleHandler {
  const log = (o.log ?? silentLogger()).child({ mod: 'console-http' });
  const now = o.now ?? Date.now;
  const b = o.backend;
  const tokenDigest = o.token ? digest(o.token) : undefined;
  const engine = b.engine;
  const analytics = engine ? { on: true, engine: engine.description } : { on: false, reason: o.analyticsOff ?? 'no ClickHouse configured' };

  if (o.readAuth && !tokenDigest) throw new Error('readAuth needs a token');
  const tokenOk = (t: string | undefined): boolean => t !== undefined && t !== '' && tokenDigest !== undefined && timingSafeEqual(digest(t), tokenDigest);
  const authorizeRead = (req: IncomingMessage): void => {
    if (!o.readAuth) return;
    const bearer = /^Bearer (.+)$/.exec(req.headers['authorization'] ?? '')?.[1];
    if (tokenOk(bearer) || tokenOk(cookie(req, TOKEN_COOKIE))) return;
    throw new HttpError(401, "this console is read with its token only (console-auth all): send Authorization: Bearer <token>, or type the token in the page's header");
  };

  const authorize = (req: IncomingMessage): void => {
    if (!tokenDigest) throw new HttpError(403, 'operator actions are off: start the console with --token (or LARS_CONSOLE_TOKEN)');
    const m = /^Bearer (.+)$/.exec(req.headers['authorization'] ?? '');
    if (!m || !timingSafeEqual(digest(m[1]!), tokenDigest)) throw new HttpError(401, 'a valid token is required for operator actions');
  };

  const stream = async (req: IncomingMessage, res: ServerResponse, ref: RouteRef): Promise<void> => {
    const ch = new SseChannel(req, res, { retryMs: 2000, heartbeatMs: SSE_PING_MS, heartbeat: 'ping', cacheControl: 'no-store', headers: { 'x-accel-buffering': 'no' } });
    const send = (event: string, data: unknown): void => ch.send(event, data);
    let firstSent = false;
    const queued: unknown[] = [];
    const stop = b.follow(ref, {
      detail: (d) => {
        firstSent = true;
        send('route', d);
      },
      event: (a) => (firstSent ? send('transition', a) : queued.push(a)),
    });
    ch.onClose(stop);
    const d = await b.detail(ref);
    if (!ch.closed) {
      if (!firstSent) send('route', d ?? { route: `${ref.modid}.${ref.cmdid}`, missing: true });
      firstSent = true;
      for (const a of queued.splice(0)) send('transition', a);
    }
  };

  const api = async (req: IncomingMessage, res: ServerResponse, u: URL, parts: string[]): Promise<void> => {
    // parts: ['api', 'routes', m?, c?, sub?, ...]
    if (parts.length === 2) {
      if (req.method !== 'GET') throw new HttpError(405, 'GET only');
      return sendJson(res, 200, { routes: await b.routes(), analytics, actions: tokenDigest !== undefined, now: now() });
    }
    if (parts.length < 4) throw new HttpError(404, 'not found');
    const ref = routeRef(parts[2]!, parts[3]!);
    const sub = parts[4];
    if (sub === 'hosts' && parts.length === 7) {
      if (req.method !== 'POST') throw new HttpError(405, 'POST only');
      authorize(req);
      const action = parts[6]!;
      if (!isHostAction(action)) throw new HttpError(404, `unknown action ${action}; known: drain, undrain, eject, clear, weight`);
      const body = (await readJsonBody(req, res, { maxBytes: MAX_BODY, empty: () => ({}) })) as { by?: unknown; weight?: unknown; dryRun?: unknown; force?: unknown };
      let addr: { ip: string; port: number };
      let weight: number | undefined;
      try {
        addr = parseHostAddr(decodeURIComponent(parts[5]!));
        if (action === 'weight') weight = parseWeight(body.weight);
      } catch (err) {
        throw new HttpError(400, (err as Error).message);
      }
      const by = actor(typeof body.by === 'string' && body.by.trim() !== '' ? `console:${body.by.trim()}` : 'console');
      const r = await b.act({ route: ref, addr, action, by, weight, dryRun: body.dryRun === true, force: body.force === true });
      log.info({ route: r.route, host: r.host, action, by, changed: r.changed, dryRun: r.dryRun, ...(r.warning !== undefined ? { forced: r.warning } : {}) }, 'operator action');
      // `by` as the registry and the route event record it, so the page names the actor as everything else does.
      return sendJson(res, 200, { ...r, by });
    }
    if (req.method !== 'GET') throw new HttpError(405, 'GET only');
    switch (sub) {
      case undefined: {
        const d = await b.detail(ref);
        return d ? sendJson(res, 200, d) : sendJson(res, 404, { error: `route ${ref.modid}.${ref.cmdid} is neither registered nor published` });
      }
      case 'stream':
        return stream(req, res, ref);
      case 'series': {
        if (!engine) throw new HttpError(404, `no pictures over time: ${analytics.reason}`);
        const minutes = Number(u.searchParams.get('minutes') ?? '60');
        if (!(minutes >= 1 && minutes <= 7 * 24 * 60)) throw new HttpError(400, 'minutes must be 1..10080');
        return sendJson(res, 200, await hostSeries(engine, ref, hostParam(u, true)!, now(), Math.round(minutes * 60)));
      }
      case 'audit': {
        const host = hostParam(u, false);
        if (!engine) return sendJson(res, 200, { source: 'live', rows: b.recentEvents(ref, host && `${host.ip}:${host.port}`) });
        return sendJson(res, 200, { source: 'clickhouse', rows: await auditTrail(engine, ref, host, now() - 7 * 86_400_000, 200) });
      }
      case 'callers': {
        if (!engine) throw new HttpError(404, `no callers: ${analytics.reason}`);
        return sendJson(res, 200, { rows: await runStats(engine, 'callers', { route: ref, fromMs: now() - 3_600_000, limit: 50 }) });
      }
      default:
        throw new HttpError(404, 'not found');
    }
  };

  /** `lars stats` through this process's engine (what `lars dev` holds): `GET /api/stats/<kind>?from=&at=&window=` (ms) `&limit=&route=m.c`. */
  const stats = async (req: IncomingMessage, res: ServerResponse, u: URL, parts: string[]): Promise<void> => {
    if (req.method !== 'GET') throw new HttpError(405, 'GET only');
    const kind = parts[2] ?? '';
    if (parts.length !== 3 || !isStatsKind(kind)) throw new HttpError(404, `say what to show: ${Object.keys(STATS).join(', ')}`);
    if (!engine) throw new HttpError(404, `no stats: ${analytics.reason}`);
    const int = (name: string, max: number): number | undefined => {
      const v = u.searchParams.get(name);
      if (v === null) return undefined;
      if (!/^\d{1,15}$/.test(v) || Number(v) > max) throw new HttpError(400, `${name} must be a whole number up to ${max}`);
      return Number(v);
    };
    const p: StatsParams = { fromMs: int('from', Number.MAX_SAFE_INTEGER) ?? 0, limit: int('limit', 100_000) ?? 100 };
    const at = int('at', Number.MAX_SAFE_INTEGER);
    const window = int('window', Number.MAX_SAFE_INTEGER);
    if (at !== undefined) p.atMs = at;
    if (window !== undefined) p.windowMs = window;
    const route = u.searchParams.get('route');
    if (route !== null) {
      const r = parseRouteArg(route);
      if (!r) throw new HttpError(400, `route must be modid.cmdid, got ${JSON.stringify(route)}`);
      p.route = r;
    }
    return sendJson(res, 200, { rows: await runStats(engine, kind, p) });
  };

  return async (req, res) => {
    const u = new URL(req.url ?? '/', 'http://console');
    const asset = ASSETS[u.pathname === '/index.html' ? '/' : u.pathname];
    try {
      if (u.pathname === '/favicon.ico') {
        res.writeHead(204).end();
        return true;
      }
      if (asset) {
        if (req.method !== 'GET' && req.method !== 'HEAD') throw new HttpError(405, 'GET only');
        const body = await readFile(asset.file());
        res.writeHead(200, { 'content-type': asset.type, 'cache-control': u.pathname.startsWith('/vendor/') ? 'max-age=86400' : 'no-cache' });
        res.end(req.method === 'HEAD' ? undefined : body);
        return true;
      }
      const parts = u.pathname.split('/').filter((p) => p !== '');
      if (parts[0] !== 'api' || (parts[1] !== 'routes' && parts[1] !== 'stats')) return false;
      authorizeRead(req);
      if (parts[1] === 'stats') await stats(req, res, u, parts);
      else await api(req, res, u, parts);
    } catch (err) {
      if (res.headersSent) {
        res.destroy();
        return true;
      }
      if (err instanceof HttpError) sendError(res, err);
      else if (err instanceof ConfirmationRequiredError) sendJson(res, 409, { error: err.message, code: err.code, consequence: err.consequence });
      else if (err instanceof LarsError) sendJson(res, 400, { error: err.message, code: err.code });
      else {
        log.error({ err, url: req.url }, 'console request failed');
        sendJson(res, 500, { error: 'internal error' });
      }
    }
    return true;
  };
}

export interface ConsoleServer {
  readonly port: number;
  readonly url: string;
  /** Serves the console from now on (a server started without a backend answers 503 until then); ready per `ready`, default always. */
  attach(o: ConsoleHandlerOptions, ready?: () => Readiness): void;
  /** Stops serving the console (503, not ready) while the server still answers: before its backend is closed. */
  detach(): void;
  close(): Promise<void>;
}

export type ConsoleServerOptions = Partial<ConsoleHandlerOptions> & {
  port: number;
  /** Default loopback; `--http-host` (LARS_HTTP_HOST). */
  host?: string;
  /** The flag that sets the port, named when it is taken (default `--port`). */
  portFlag?: string;
};

/**
 * `lars console`: the console on its own port, with `/healthz` and `/readyz`
 * (the metrics server's, without metrics). Bound at once; given no backend,
 * it serves the console once `attach`ed, so a port in use fails before
 * anything connects.
 */
export async function startConsoleServer(o: ConsoleServerOptions): Promise<ConsoleServer> {
  let handle: ConsoleHandler | undefined;
  let phase = 'starting';
  let ready: () => Readiness = () => ({ ready: false, reason: `console ${phase}` });
  const server = await startMetricsServer({ port: o.port, host: o.host, portFlag: o.portFlag ?? '--port', ready: () => ready(), log: o.log });
  server.mount(async (req, res) => {
    if (handle) return handle(req, res);
    sendJson(res, 503, { error: `the console is ${phase}` });
    return true;
  });
  const attach = (h: ConsoleHandlerOptions, r?: () => Readiness): void => {
    handle = createConsoleHandler(h);
    ready = r ?? (() => ({ ready: true }));
  };
  const detach = (): void => {
    handle = undefined;
    phase = 'stopping';
    ready = () => ({ ready: false, reason: 'console stopping' });
  };
  if (o.backend) attach({ ...o, backend: o.backend });
  return { port: server.port, url: server.url, attach, detach, close: () => server.close() };
}
