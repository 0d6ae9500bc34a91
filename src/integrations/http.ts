/**
 * HTTP through undici (HTTP/1.1, HTTP/2 over TLS, or HTTP/2 without TLS):
 * every request picks a host of a route through the agent, goes there, and
 * is reported by itself: status and latency when it ends, a timeout when the
 * timeout fires (the request is aborted then, so nothing is reported twice),
 * a connection error when no answer came.
 *
 *   const http = createHttpClient(agent, { protocol: 'h2c', timeoutMs: 1000 });
 *   const res = await http.request('lars://1.2/users/7?full=1');     // lars://<modid>.<cmdid>/<path>
 *   const res2 = await http.request({ modid: 1, cmdid: 2, path: '/users/7' }, { method: 'POST', body });
 *   res.statusCode, res.body (Buffer), res.text(), res.json(), res.host, res.latencyMs
 *   await http.close();
 */
import { performance } from 'node:perf_hooks';
import { Agent as UndiciAgent, H2CClient, type Dispatcher } from 'undici';
import type { IncomingHttpHeaders } from 'node:http';
import { classifyError, type Agent, type CallOptions, type Classified } from '../agent/agent.ts';
import { connectionRetcode, httpRetcode, resolveFailurePolicy, timeoutRetcode, type FailurePolicy, type ResolvedFailurePolicy } from './outcome.ts';
import { CallTimeoutError, isRouteId, pickHost } from './target.ts';

export { NoHostError, CallTimeoutError } from './target.ts';
export { DEFAULT_FAILURE_POLICY, Retcode, type FailurePolicy } from './outcome.ts';
export { reportServed, type HttpServedOptions } from './http-server.ts';

export const HttpProtocol = {
  /** HTTP/1.1 over TCP (keep-alive, pooled per host). */
  http1: 'http1',
  /** HTTP/2 without TLS (prior knowledge, h2c). */
  h2c: 'h2c',
  /** HTTPS; HTTP/2 when the server offers it through ALPN, else HTTP/1.1. */
  https: 'https',
} as const;
export type HttpProtocol = (typeof HttpProtocol)[keyof typeof HttpProtocol];

/**
 * The header that carries an attempt's time to the callee, ms (as gRPC's
 * `grpc-timeout` does): a server may stop working on a request whose caller
 * has given up. Sent by `HttpClient.call`.
 */
export const TIMEOUT_HEADER = 'x-lars-timeout-ms';

/** An answer whose status the failure policy counts as a failure, thrown inside `HttpClient.call` so the call policy can retry it. */
export class HttpStatusError extends Error {
  readonly response: HttpResponse;
  readonly retcode: number;
  constructor(response: HttpResponse) {
    super(`HTTP ${response.statusCode} from ${response.host.ip}:${response.host.port}`);
    this.name = 'HttpStatusError';
    this.response = response;
    this.retcode = response.retcode;
  }
}

/** HttpClient.call's classification: 5xx and 429 answers are retried, as are timeouts and connection errors; other failures are not. */
export function classifyHttp(err: unknown): Classified {
  if (err instanceof HttpStatusError) {
    const st = err.response.statusCode;
    return { retcode: err.retcode, retriable: st >= 500 || st === 429 };
  }
  return classifyError(err);
}

export interface HttpClientOptions {
  /** The call policy of `call()` (attempts, deadline, hedging of idempotent requests); a request's `policy` overrides it field by field. */
  policy?: CallOptions;
  /** Default http1. */
  protocol?: HttpProtocol;
  /** Timeout of a whole call (headers and body), ms, unless a request says otherwise (default 10000). */
  timeoutMs?: number;
  /** What counts as a failure (defaults in outcome.ts: 5xx, 429, timeouts and connection errors). */
  failure?: Partial<FailurePolicy>;
  /** Connections per host at most (HTTP/1.1; default: undici's, unlimited). */
  connections?: number;
  /** TLS options for `https` (ca, servername, rejectUnauthorized...). */
  tls?: Record<string, unknown>;
  /** Replaces the dispatcher built from the options above (requests get `origin` set per call). */
  dispatcher?: Dispatcher;
  /** Monotonic clock for latencies, ms (default performance.now). */
  clock?: () => number;
}

export interface HttpTarget {
  modid: number;
  cmdid: number;
  /** Path and query, default '/'. */
  path?: string;
}

export interface HttpRequestOptions {
  method?: Dispatcher.HttpMethod;
  headers?: Record<string, string | string[]>;
  body?: string | Uint8Array;
  /** Overrides the client's timeoutMs for this call. */
  timeoutMs?: number;
  /** Key for the consistent-hash strategy. */
  key?: string;
  /** Aborts the call (reported as the failure policy says for a cancelled call: not a failure). */
  signal?: AbortSignal;
}

export interface HttpResponse {
  readonly statusCode: number;
  readonly headers: IncomingHttpHeaders;
  readonly body: Buffer;
  /** The host that answered. */
  readonly host: { readonly ip: string; readonly port: number };
  readonly latencyMs: number;
  /** The retcode reported for this call (0 success). */
  readonly retcode: number;
  text(): string;
  json(): unknown;
}

/** Parses `lars://<modid>.<cmdid>/<path>`; throws RangeError on anything else. */
export function parseLarsUrl(url: string): HttpTarget {
  let u: URL;
  try {
    u = new URL(url);
  } catch (err) {
    throw new RangeError(`not a lars:// URL: ${url}`, { cause: err });
  }
  const m = /^(\d+)\.(\d+)$/.exec(u.host);
  if (u.protocol !== 'lars:' || m === null) throw new RangeError(`not a lars://<modid>.<cmdid>/ URL: ${url}`);
  const modid = Number(m[1]);
  const cmdid = Number(m[2]);
  if (!isRouteId(modid) || !isRouteId(cmdid)) throw new RangeError(`modid and cmdid must be uint32: ${url}`);
  return { modid, cmdid, path: (u.pathname === '' ? '/' : u.pathname) + u.search };
}

export class HttpClient {
  readonly dispatcher: Dispatcher;
  readonly policy: ResolvedFailurePolicy;
  private readonly agent: Agent;
  private readonly scheme: 'http' | 'https';
  private readonly timeoutMs: number;
  private readonly clock: () => number;
  private readonly ownsDispatcher: boolean;
  private readonly defaultPolicy: CallOptions;

  constructor(agent: Agent, opts: HttpClientOptions = {}) {
    this.agent = agent;
    this.policy = resolveFailurePolicy(opts.failure);
    this.timeoutMs = opts.timeoutMs ?? 10_000;
    if (!(this.timeoutMs > 0)) throw new RangeError(`timeoutMs must be > 0, got ${this.timeoutMs}`);
    this.clock = opts.clock ?? (() => performance.now());
    const protocol = opts.protocol ?? HttpProtocol.http1;
    this.scheme = protocol === HttpProtocol.https ? 'https' : 'http';
    this.defaultPolicy = opts.policy ?? {};
    this.ownsDispatcher = opts.dispatcher === undefined;
    this.dispatcher = opts.dispatcher ?? buildDispatcher(protocol, opts);
  }

  /** Sends one request to a host of the route; resolves with the whole response, rejects with NoHostError, CallTimeoutError or the connection's error. */
  async request(target: string | HttpTarget, opts: HttpRequestOptions = {}): Promise<HttpResponse> {
    const t = typeof target === 'string' ? parseLarsUrl(target) : target;
    const { modid, cmdid } = t;
    const host = await pickHost(this.agent, modid, cmdid, opts.key);
    const timeoutMs = opts.timeoutMs ?? this.timeoutMs;
    const start = this.clock();
    const ac = new AbortController();
    let reported = false;
    const report = (retcode: number, latencyMs: number): void => {
      if (reported) return;
      reported = true;
      this.agent.report(modid, cmdid, host, retcode, latencyMs);
    };
    const timer = setTimeout(() => {
      // Reported now, with the timeout as latency: a late answer is not reported again.
      report(timeoutRetcode(this.policy), timeoutMs);
      ac.abort(new CallTimeoutError(`${modid}.${cmdid} ${host.ip}:${host.port}`, timeoutMs));
    }, timeoutMs);
    const onCallerAbort = (): void => ac.abort(opts.signal?.reason);
    if (opts.signal) {
      if (opts.signal.aborted) onCallerAbort();
      else opts.signal.addEventListener('abort', onCallerAbort, { once: true });
    }
    try {
      const res = await this.dispatcher.request({
        origin: `${this.scheme}://${host.ip}:${host.port}`,
        path: t.path ?? '/',
        method: opts.method ?? 'GET',
        headers: opts.headers,
        body: opts.body,
        signal: ac.signal,
        headersTimeout: 0,
        bodyTimeout: 0,
      });
      const body = Buffer.from(await res.body.arrayBuffer());
      const latencyMs = this.clock() - start;
      const retcode = httpRetcode(this.policy, res.statusCode, latencyMs);
      report(retcode, latencyMs);
      return new Response(res.statusCode, res.headers, body, host, latencyMs, retcode);
    } catch (err) {
      if (ac.signal.aborted && ac.signal.reason instanceof CallTimeoutError) throw ac.signal.reason;
      // cancelled by the caller: says nothing about the host (ends its in-flight count)
      if (opts.signal?.aborted) report(0, this.clock() - start);
      else report(connectionRetcode(this.policy), this.clock() - start);
      throw err;
    } finally {
      clearTimeout(timer);
      opts.signal?.removeEventListener('abort', onCallerAbort);
    }
  }

  /**
   * Sends one logical request under the route's call policy (`agent.call`):
   * a failure the failure policy counts (5xx, 429, a timeout, a connection
   * error) is retried on another host within the route's retry budget and
   * the deadline, an idempotent request (`policy.idempotent`, e.g. a GET) is
   * hedged, and each attempt carries its time to the callee in
   * `x-lars-timeout-ms`. Resolves with the first successful response;
   * rejects with a `CallError` listing every attempt (a failed answer is its
   * attempt's `error`, an HttpStatusError holding the response).
   */
  async call(target: string | HttpTarget, opts: HttpRequestOptions & { policy?: CallOptions } = {}): Promise<HttpResponse> {
    const t = typeof target === 'string' ? parseLarsUrl(target) : target;
    const policy: CallOptions = { attemptTimeoutMs: opts.timeoutMs ?? this.timeoutMs, classify: classifyHttp, ...this.defaultPolicy, ...opts.policy };
    if (opts.key !== undefined) policy.key = opts.key;
    if (opts.signal !== undefined) policy.signal = opts.signal;
    return this.agent.call(
      t.modid,
      t.cmdid,
      async (host, signal, info) => {
        const start = this.clock();
        const res = await this.dispatcher.request({
          origin: `${this.scheme}://${host.ip}:${host.port}`,
          path: t.path ?? '/',
          method: opts.method ?? 'GET',
          headers: { ...opts.headers, [TIMEOUT_HEADER]: String(Math.max(0, Math.floor(info.timeoutMs))) },
          body: opts.body,
          signal,
          headersTimeout: 0,
          bodyTimeout: 0,
        });
        const body = Buffer.from(await res.body.arrayBuffer());
        const latencyMs = this.clock() - start;
        const r = new Response(res.statusCode, res.headers, body, { ip: host.ip, port: host.port }, latencyMs, httpRetcode(this.policy, res.statusCode, latencyMs));
        if (r.retcode !== 0) throw new HttpStatusError(r);
        return r;
      },
      policy,
    );
  }

  /** Closes the connections (the agent stays open). */
  async close(): Promise<void> {
    if (this.ownsDispatcher) await this.dispatcher.close();
  }
}

class Response implements HttpResponse {
  readonly statusCode: number;
  readonly headers: IncomingHttpHeaders;
  readonly body: Buffer;
  readonly host: { readonly ip: string; readonly port: number };
  readonly latencyMs: number;
  readonly retcode: number;
  constructor(statusCode: number, headers: IncomingHttpHeaders, body: Buffer, host: { ip: string; port: number }, latencyMs: number, retcode: number) {
    this.statusCode = statusCode;
    this.headers = headers;
    this.body = body;
    this.host = host;
    this.latencyMs = latencyMs;
    this.retcode = retcode;
  }
  text(): string {
    return this.body.toString('utf8');
  }
  json(): unknown {
    return JSON.parse(this.text()) as unknown;
  }
}

function buildDispatcher(protocol: HttpProtocol, opts: HttpClientOptions): Dispatcher {
  switch (protocol) {
    case HttpProtocol.http1:
      return new UndiciAgent({ connections: opts.connections ?? null });
    case HttpProtocol.h2c:
      return new UndiciAgent({ factory: (origin) => new H2CClient(origin) });
    case HttpProtocol.https:
      return new UndiciAgent({ allowH2: true, connections: opts.connections ?? null, connect: opts.tls ?? {} });
    default: {
      const unknown: never = protocol;
      throw new RangeError(`unknown protocol: ${String(unknown)}`);
    }
  }
}

/** An HTTP client on `agent` (see HttpClientOptions). */
export function createHttpClient(agent: Agent, opts: HttpClientOptions = {}): HttpClient {
  return new HttpClient(agent, opts);
}
