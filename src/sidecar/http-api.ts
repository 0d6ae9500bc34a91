/**
 * The sidecar's HTTP/JSON API on loopback, for any language (node:http,
 * keep-alive):
 *
 *   GET  /v1/host?modid=&cmdid=[&key=]   a host to call
 *   GET  /v1/route?modid=&cmdid=         the effective route (RouteState)
 *   POST /v1/report                      one report, or {"reports": [...]}
 *   GET  /v1/routes/stream?modid=&cmdid= server-sent events: the state now, then every change
 *   GET  /healthz                        liveness and counters
 *   GET  /metrics, /readyz               as on `--http` (when the sidecar mounts them: `extra`)
 *
 * Errors are JSON `{ ok: false, code, message }` with a 4xx/5xx status.
 * A route change is serialised once, whatever the number of streams
 * following it. A host look-up of a route already loaded is answered in the
 * request's own turn, its JSON and headers made once per pick result.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { listen, DEFAULT_HTTP_HOST } from '../http/listen.ts';
import type { ExtraHandler } from '../metrics/http.ts';
import type { Agent, HostPick } from '../agent/agent.ts';
import { RouteStatus } from '../agent/route-follower.ts';
import type { RouteState } from '../../schemas/messages.ts';
import { MAX_POSTED_REPORTS, validatePostedBody, validatePostedReport, type PostedReport } from '../../schemas/posted-report.ts';
import { silentLogger, type Logger } from '../lib/log.ts';
import { RateLimitedLog } from '../lib/ratelog.ts';
import { RouteBudget } from './route-budget.ts';
import { SELF_DEFAULTS, type SelfRegWriter } from '../agent/self-register.ts';
import { SelfState, validateSelfRegistration, type SelfRegistration } from '../../schemas/messages.ts';
import { HttpError, HttpErrorCode as KitCode } from '../http/error.ts';
import { readJsonBody } from '../http/body.ts';
import { SseChannel, sseEvent } from '../http/sse.ts';

export const DEFAULT_HTTP_PORT = 8900;
export { DEFAULT_HTTP_HOST };
/** Largest request body, bytes. */
export const MAX_BODY_BYTES = 1 << 20;
/** Most reports in one POST. */
export const MAX_REPORTS_PER_POST = MAX_POSTED_REPORTS;

/** The codes of the API's errors: the HTTP kit's, and the sidecar's own. */
export const HttpErrorCode = {
  badRequest: KitCode.badRequest,
  notFound: KitCode.notFound,
  methodNotAllowed: KitCode.methodNotAllowed,
  tooLarge: KitCode.tooLarge,
  noRoute: 'NO_ROUTE',
  noHost: 'NO_HOST',
  tooManyRoutes: 'TOO_MANY_ROUTES',
  /** Self-registration is not possible now (no route node created its bucket yet, or NATS refused). */
  unavailable: KitCode.unavailable,
  internal: KitCode.internal,
} as const;
export type HttpErrorCode = (typeof HttpErrorCode)[keyof typeof HttpErrorCode];

export interface HttpApiOptions {
  agent: Agent;
  /** Default 127.0.0.1. */
  host?: string;
  /** 0 = any free port; default 8900. */
  port?: number;
  /** Comment line on every event stream this often, ms; default 15000. */
  heartbeatMs?: number;
  /** Bound on the routes callers make the agent follow (shared with the UDP API); default 10000. */
  budget?: RouteBudget;
  /** The self-registration bucket, opened on first use (`POST /v1/register`); absent: those endpoints answer 503. */
  selfReg?: () => Promise<SelfRegWriter>;
  /** Extra fields of /healthz (the other API's counters). */
  health?: () => Record<string, unknown>;
  /** Further paths, tried before the 404 (`/metrics`, `/readyz`). */
  extra?: ExtraHandler;
  log?: Logger;
  clock?: () => number;
}

export interface HttpApiStats {
  requests: number;
  badRequests: number;
  reports: number;
  streams: number;
  streamEvents: number;
  /** Self-registration heartbeats written (`POST /v1/register`). */
  registrations: number;
}

/** One report as posted (the contract's PostedReport, schemas/contract.ts). */
export type { PostedReport };

/** An answer other than a success: 400 BAD_REQUEST, or another status and one of the API's codes. */
function refuse(message: string, status = 400, code: HttpErrorCode = HttpErrorCode.badRequest): HttpError {
  return new HttpError(status, message, code);
}

const UINT32_MAX = 4_294_967_295;

function routeId(q: URLSearchParams, name: 'modid' | 'cmdid'): number {
  const v = q.get(name);
  if (v === null) throw refuse(`${name} is required (an integer 0..${UINT32_MAX})`);
  const n = /^\d{1,10}$/.test(v) ? Number(v) : Number.NaN;
  if (!(n <= UINT32_MAX)) throw refuse(`${name} must be an integer 0..${UINT32_MAX}, got ${JSON.stringify(v.slice(0, 40))}`);
  return n;
}

/** Validates one posted report (the contract's PostedReport); `at` names it in the error ("reports[3]"). */
export function validateReport(r: unknown, at: string): PostedReport {
  const v = validatePostedReport(r, at);
  if (!v.ok) throw refuse(v.detail);
  return v.value;
}

/** Streams following one route: one listener on the agent, one serialisation per change. */
class RouteStreams {
  readonly clients = new Set<SseChannel>();
  last: string | undefined;
  stop: (() => void) | undefined;
}

const JSON_HEADERS = { 'content-type': 'application/json' } as const;

/** A pick's answer as sent: its JSON once, and the headers that go with it. */
interface PickAnswer {
  readonly status: number;
  readonly body: Buffer;
  readonly headers: readonly string[];
}

function pickAnswer(h: HostPick): PickAnswer {
  const body = Buffer.from(JSON.stringify(h));
  return { status: h.ok ? 200 : h.code === 'NO_ROUTE' ? 404 : 503, body, headers: ['content-type', 'application/json', 'content-length', String(body.length)] };
}

/**
 * `modid=<n>&cmdid=<n>` starting at `at` and ending the URL (what clients
 * send to /v1/host): the two ids in `out`, or false for any other query
 * (read in full then, with its errors).
 */
function quickIds(url: string, at: number, out: { modid: number; cmdid: number }): boolean {
  if (!url.startsWith('modid=', at)) return false;
  let i = at + 6;
  let start = i;
  let m = 0;
  for (let c = url.charCodeAt(i); c >= 48 && c <= 57; c = url.charCodeAt(++i)) m = m * 10 + (c - 48);
  if (i === start || i - start > 10 || m > UINT32_MAX || !url.startsWith('&cmdid=', i)) return false;
  i += 7;
  start = i;
  let n = 0;
  for (let c = url.charCodeAt(i); c >= 48 && c <= 57; c = url.charCodeAt(++i)) n = n * 10 + (c - 48);
  if (i === start || i - start > 10 || n > UINT32_MAX || i !== url.length) return false;
  out.modid = m;
  out.cmdid = n;
  return true;
}

export class HttpApi {
  private readonly agent: Agent;
  private readonly server: Server;
  private readonly log: Logger;
  private readonly rateLog: RateLimitedLog;
  private readonly heartbeatMs: number;
  private readonly health: () => Record<string, unknown>;
  private readonly budget: RouteBudget;
  private readonly selfReg: (() => Promise<SelfRegWriter>) | undefined;
  private readonly extra: ExtraHandler | undefined;
  private readonly streams = new Map<string, RouteStreams>();
  private heartbeat: NodeJS.Timeout | undefined;
  /** Answers by pick result (the agent's own objects: one per host, and one per kind of no-host). */
  private readonly answers = new WeakMap<HostPick, PickAnswer>();
  private readonly ids = { modid: 0, cmdid: 0 };
  private readonly counters: HttpApiStats = { requests: 0, badRequests: 0, reports: 0, streams: 0, streamEvents: 0, registrations: 0 };

  private constructor(opts: HttpApiOptions) {
    this.agent = opts.agent;
    this.log = (opts.log ?? silentLogger()).child({ mod: 'http-api' });
    this.rateLog = new RateLimitedLog(this.log, 10_000, opts.clock ?? Date.now);
    this.heartbeatMs = opts.heartbeatMs ?? 15_000;
    this.health = opts.health ?? (() => ({}));
    this.budget = opts.budget ?? new RouteBudget(opts.agent);
    this.selfReg = opts.selfReg;
    this.extra = opts.extra;
    this.server = createServer({ keepAlive: true, keepAliveTimeout: 65_000, requestTimeout: 30_000 }, (req, res) => this.onRequest(req, res));
    // Idle keep-alive sockets may live long; event streams must not be cut by the request timeout.
    this.server.on('clientError', (err, socket) => {
      this.rateLog.warn('client-error', { err: (err as Error).message }, 'bad HTTP request');
      if (socket.writable) socket.end('HTTP/1.1 400 Bad Request\r\nconnection: close\r\n\r\n');
      else socket.destroy();
    });
  }

  static async start(opts: HttpApiOptions): Promise<HttpApi> {
    const api = new HttpApi(opts);
    const port = opts.port ?? DEFAULT_HTTP_PORT;
    const host = opts.host ?? DEFAULT_HTTP_HOST;
    await listen(api.server, { port, host, portFlag: '--http-port' });
    api.heartbeat = setInterval(() => api.beat(), api.heartbeatMs);
    api.heartbeat.unref();
    return api;
  }

  port(): number {
    return (this.server.address() as AddressInfo).port;
  }

  stats(): HttpApiStats {
    return { ...this.counters };
  }

  private onRequest(req: IncomingMessage, res: ServerResponse): void {
    this.counters.requests++;
    const url = req.url ?? '/';
    const qi = url.indexOf('?');
    // The hot request, `GET /v1/host?modid=&cmdid=` on a route already loaded: answered in this turn, from cached bytes.
    if (qi === 8 && req.method === 'GET' && url.startsWith('/v1/host') && quickIds(url, 9, this.ids)) {
      try {
        if (this.hostNow(this.ids.modid, this.ids.cmdid, res)) return;
      } catch (err) {
        this.fail(res, err);
        return;
      }
    }
    const path = qi < 0 ? url : url.slice(0, qi);
    const q = new URLSearchParams(qi < 0 ? '' : url.slice(qi + 1));
    try {
      switch (path) {
        case '/v1/host':
          this.only(req, 'GET');
          void this.host(q, res).catch((err: unknown) => this.fail(res, err));
          return;
        case '/v1/route':
          this.only(req, 'GET');
          void this.route(q, res).catch((err: unknown) => this.fail(res, err));
          return;
        case '/v1/report':
          this.only(req, 'POST');
          this.report(req, res);
          return;
        case '/v1/register':
          this.only(req, 'POST');
          this.register(req, res, SelfState.up);
          return;
        case '/v1/deregister':
          this.only(req, 'POST');
          this.register(req, res, SelfState.draining);
          return;
        case '/v1/routes/stream':
          this.only(req, 'GET');
          this.stream(q, req, res);
          return;
        case '/healthz':
          this.only(req, 'GET');
          this.json(res, 200, { ok: true, connected: this.agent.isConnected(), agent: this.agent.stats(), http: this.stats(), ...this.health() });
          return;
        default: {
          const extra = this.extra;
          const notFound = refuse(`no such endpoint ${path.slice(0, 80)}; see /v1/host, /v1/route, /v1/report, /v1/register, /v1/deregister, /v1/routes/stream, /healthz${extra ? ', /readyz, /metrics' : ''}`, 404, HttpErrorCode.notFound);
          if (!extra) throw notFound;
          void extra(req, res).then(
            (served) => served || this.fail(res, notFound),
            (err: unknown) => this.fail(res, err),
          );
          return;
        }
      }
    } catch (err) {
      this.fail(res, err);
    }
  }

  private only(req: IncomingMessage, method: 'GET' | 'POST'): void {
    if (req.method !== method) throw refuse(`${req.method ?? '?'} not allowed here; use ${method}`, 405, HttpErrorCode.methodNotAllowed);
  }

  private json(res: ServerResponse, status: number, body: unknown): void {
    const s = JSON.stringify(body);
    res.writeHead(status, { ...JSON_HEADERS, 'content-length': Buffer.byteLength(s) });
    res.end(s);
  }

  private fail(res: ServerResponse, err: unknown): void {
    if (err instanceof HttpError) {
      this.counters.badRequests++;
      if (!res.headersSent) this.json(res, err.status, { ok: false, code: err.code, message: err.message });
      return;
    }
    this.rateLog.error('internal', { err }, 'HTTP API request failed');
    if (!res.headersSent) this.json(res, 500, { ok: false, code: HttpErrorCode.internal, message: (err as Error)?.message ?? String(err) });
    else res.destroy();
  }

  /** Refuses a route that would be one more than the sidecar may follow. */
  private followable(modid: number, cmdid: number): void {
    if (!this.budget.allows(modid, cmdid)) throw refuse(`the sidecar already follows ${this.budget.max} routes; route ${modid}.${cmdid} is not followed`, 503, HttpErrorCode.tooManyRoutes);
  }

  /** Answers a host look-up of a followed route that is not loading; false when the route must be waited for. */
  private hostNow(modid: number, cmdid: number, res: ServerResponse): boolean {
    this.followable(modid, cmdid);
    const f = this.agent.follower.peek(modid, cmdid);
    if (f === undefined || f.status === RouteStatus.loading) return false;
    const h = this.agent.pick(modid, cmdid);
    let a = this.answers.get(h);
    if (a === undefined) {
      a = pickAnswer(h);
      this.answers.set(h, a);
    }
    res.writeHead(a.status, a.headers as string[]);
    res.end(a.body);
    return true;
  }

  private async host(q: URLSearchParams, res: ServerResponse): Promise<void> {
    const modid = routeId(q, 'modid');
    const cmdid = routeId(q, 'cmdid');
    this.followable(modid, cmdid);
    const key = q.get('key') ?? undefined;
    const h = await this.agent.getHost(modid, cmdid, key);
    this.json(res, h.ok ? 200 : h.code === 'NO_ROUTE' ? 404 : 503, h);
  }

  private async route(q: URLSearchParams, res: ServerResponse): Promise<void> {
    const modid = routeId(q, 'modid');
    const cmdid = routeId(q, 'cmdid');
    this.followable(modid, cmdid);
    const s = await this.agent.getRoute(modid, cmdid);
    if (s === undefined) this.json(res, 404, { ok: false, code: HttpErrorCode.noRoute, message: this.agent.follower.state(modid, cmdid).status === 'loading' ? 'route is loading' : 'route is not registered' });
    else this.json(res, 200, s);
  }

  /**
   * Reads a JSON body of at most `max` bytes (the HTTP kit's reader); calls
   * `take` with it, or answers 413 or 400. A body over the limit closes the
   * connection.
   */
  private readJson(req: IncomingMessage, res: ServerResponse, max: number, tooLarge: string, take: (body: unknown) => void): void {
    readJsonBody(req, res, { maxBytes: max, hint: tooLarge }).then(take).catch((err: unknown) => this.fail(res, err));
  }

  private report(req: IncomingMessage, res: ServerResponse): void {
    this.readJson(req, res, MAX_BODY_BYTES, `post at most ${MAX_REPORTS_PER_POST} reports at once`, (body) => {
      const v = validatePostedBody(body);
      if (!v.ok) throw refuse(v.detail);
      const reports = v.value;
      // All valid or none taken: a client fixes its request and posts it again whole.
      for (const r of reports) this.agent.report(r.modid, r.cmdid, r, r.retcode, r.latency_ms ?? 0, r.utilization);
      this.counters.reports += reports.length;
      this.json(res, 200, { ok: true, accepted: reports.length });
    });
  }

  /**
   * `POST /v1/register`: one heartbeat of a self-registered host (the
   * service posts it every ttl_ms / 5 or so). `POST /v1/deregister`: says
   * draining, answers once the host has left (after drain_ms, during which
   * the service keeps serving), and deletes the registration.
   */
  private register(req: IncomingMessage, res: ServerResponse, state: SelfState): void {
    this.readJson(req, res, 4096, 'a registration is one small JSON object', (body) => {
      if (typeof body !== 'object' || body === null || Array.isArray(body)) throw refuse('a registration is a JSON object {modid, cmdid, ip, port[, weight, zone, ttl_ms, instance]}');
      const b = body as Record<string, unknown>;
      const drainMs = b['drain_ms'] ?? SELF_DEFAULTS.drainMs;
      if (state === SelfState.draining && !(typeof drainMs === 'number' && Number.isInteger(drainMs) && drainMs >= 0 && drainMs <= 600_000)) throw refuse('drain_ms must be an integer 0..600000');
      const rec = {
        v: 1,
        modid: b['modid'],
        cmdid: b['cmdid'],
        ip: b['ip'],
        port: b['port'],
        weight: b['weight'] ?? SELF_DEFAULTS.weight,
        ...(b['zone'] !== undefined ? { zone: b['zone'] } : {}),
        state: SelfState.up,
        instance: b['instance'] ?? `http ${req.socket.remoteAddress ?? '?'}`,
        ttl_ms: b['ttl_ms'] ?? SELF_DEFAULTS.ttlMs,
        ts: Date.now(),
      };
      const v = validateSelfRegistration(rec);
      if (!v.ok) throw refuse(`registration refused: ${v.detail}`);
      const open = this.selfReg;
      if (open === undefined) throw refuse('self-registration is not served by this sidecar', 503, HttpErrorCode.unavailable);
      void this.writeRegistration(open, v.value, state, drainMs as number, res).catch((err: unknown) => this.fail(res, err));
    });
  }

  private async writeRegistration(open: () => Promise<SelfRegWriter>, rec: SelfRegistration, state: SelfState, drainMs: number, res: ServerResponse): Promise<void> {
    let w: SelfRegWriter;
    try {
      w = await open();
    } catch (err) {
      throw refuse((err as Error).message, 503, HttpErrorCode.unavailable);
    }
    if (state === SelfState.up) {
      await w.put(rec);
      this.counters.registrations++;
      this.json(res, 200, { ok: true, key: w.key(rec), ttl_ms: rec.ttl_ms, heartbeat_ms: Math.floor(rec.ttl_ms / SELF_DEFAULTS.heartbeatsPerTtl) });
    } else {
      await w.leave(rec, drainMs);
      this.json(res, 200, { ok: true, key: w.key(rec), deregistered: true });
    }
  }

  private stream(q: URLSearchParams, req: IncomingMessage, res: ServerResponse): void {
    const modid = routeId(q, 'modid');
    const cmdid = routeId(q, 'cmdid');
    this.followable(modid, cmdid);
    const key = `${modid}.${cmdid}`;
    // The server beats for all its streams at once (`beat`).
    const ch = new SseChannel(req, res, { retryMs: 1000 });
    let rs = this.streams.get(key);
    if (rs === undefined) {
      const created = new RouteStreams();
      rs = created;
      this.streams.set(key, created);
      created.stop = this.agent.watchRoute(modid, cmdid, (s) => this.broadcast(created, s));
    }
    const view = this.agent.follower.state(modid, cmdid);
    if (view.status === 'loaded') ch.write(rs.last ?? eventOf(view.state));
    else ch.send('status', { status: view.status });
    rs.clients.add(ch);
    this.counters.streams++;
    const done = (): void => {
      const cur = this.streams.get(key);
      if (!cur) return;
      cur.clients.delete(ch);
      if (cur.clients.size === 0) {
        cur.stop?.();
        this.streams.delete(key);
      }
    };
    ch.onClose(done);
  }

  private broadcast(rs: RouteStreams, s: RouteState): void {
    const chunk = eventOf(s);
    rs.last = chunk;
    for (const c of rs.clients) {
      c.write(chunk);
      this.counters.streamEvents++;
    }
  }

  private beat(): void {
    for (const rs of this.streams.values()) for (const c of rs.clients) c.heartbeat();
  }

  /** Stops accepting, ends every stream and idle connection. */
  async close(): Promise<void> {
    clearInterval(this.heartbeat);
    for (const rs of this.streams.values()) {
      rs.stop?.();
      for (const c of rs.clients) c.end();
    }
    this.streams.clear();
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    this.server.closeIdleConnections();
    setImmediate(() => this.server.closeAllConnections());
    await closed;
  }
}

/** One SSE event of a route state: `id` is its version. */
function eventOf(s: RouteState): string {
  return sseEvent('route', s, s.version);
}
