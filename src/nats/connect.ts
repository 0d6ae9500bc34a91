/** Opens NATS connections with the project's defaults and one clear error when the server is away. */
import { channel } from 'node:diagnostics_channel';
import { readFileSync } from 'node:fs';
import type { Socket } from 'node:net';
import { AuthorizationError, connect, type NatsConnection, type ConnectionOptions } from '@nats-io/transport-node';
import { ConfigError, NatsAuthError, NatsUnreachableError } from '../errors.ts';
import type { LarsConfig } from '../config.ts';
import type { Logger } from '../log.ts';

export type { NatsConnection };

export interface ConnectOptions {
  url: string;
  name?: string;
  /** Keep reconnecting forever (long-running components); default true. */
  reconnect?: boolean;
  /** First-connect timeout, ms. */
  timeoutMs?: number;
  /** User and password (the URL may carry them too). */
  user?: string;
  pass?: string;
  /** TLS: CA, client certificate and key, as PEM text. */
  tls?: { ca?: string; cert?: string; key?: string };
  extra?: Partial<ConnectionOptions>;
}

/** Connection options of a config: URL(s), credentials and TLS files (read now, so a bad path is a config error). */
export function natsOptionsFromConfig(cfg: Pick<LarsConfig, 'natsUrl' | 'natsUser' | 'natsPass' | 'natsTlsCa' | 'natsTlsCert' | 'natsTlsKey'>): Pick<ConnectOptions, 'url' | 'user' | 'pass' | 'tls'> {
  const o: Pick<ConnectOptions, 'url' | 'user' | 'pass' | 'tls'> = { url: cfg.natsUrl };
  if (cfg.natsUser) o.user = cfg.natsUser;
  if (cfg.natsPass) o.pass = cfg.natsPass;
  const read = (what: string, path: string): string | undefined => {
    if (!path) return undefined;
    try {
      return readFileSync(path, 'utf8');
    } catch (err) {
      throw new ConfigError(`cannot read the NATS TLS ${what} file ${path}: ${(err as Error).message}`, { cause: err });
    }
  };
  const ca = read('CA', cfg.natsTlsCa);
  const cert = read('certificate', cfg.natsTlsCert);
  const key = read('key', cfg.natsTlsKey);
  if (ca !== undefined || cert !== undefined || key !== undefined) {
    o.tls = {};
    if (ca !== undefined) o.tls.ca = ca;
    if (cert !== undefined) o.tls.cert = cert;
    if (key !== undefined) o.tls.key = key;
  }
  return o;
}

/** Every TCP client socket the process opens is announced here (a documented Node channel). */
const clientSockets = channel('net.client.socket');

/** What went wrong with a first connect, in words, and whether something other than NATS answered. */
function whyUnreachable(err: unknown, dialled: readonly Socket[], timeoutMs: number): { why?: string; notNats?: boolean } {
  const e = err as { name?: string; message?: string; code?: string; cause?: { code?: string } };
  const code = e.code ?? e.cause?.code;
  if (code === 'ECONNREFUSED') return { why: 'connection refused' };
  if (code === 'ENOTFOUND' || code === 'EAI_AGAIN') return { why: 'unknown host' };
  if (e.name === 'TimeoutError') {
    const silent = dialled.some((s) => s.bytesRead === 0 && s.remotePort !== undefined);
    if (silent) return { why: `something accepted the connection but sent no NATS greeting within ${timeoutMs / 1000} s`, notNats: true };
    return { why: `no answer within ${timeoutMs / 1000} s` };
  }
  if (/unexpected response/i.test(e.message ?? '')) return { why: 'something else answers there, not a NATS server', notNats: true };
  return e.message ? { why: e.message } : {};
}

export async function connectNats(opts: ConnectOptions): Promise<NatsConnection> {
  const servers = opts.url.split(',').map((s) => s.trim()).filter((s) => s.length > 0);
  const timeoutMs = opts.timeoutMs ?? 3000;
  // The client leaves the socket of a server that accepted the connection and never sent its INFO
  // open after the connect timeout (nats-io/nats.js#64): it would keep the process alive. The sockets
  // opened while connecting are kept here so a failed connect can close them.
  const dialled: Socket[] = [];
  const onSocket = (m: unknown): void => {
    const socket = (m as { socket?: Socket }).socket;
    if (socket) dialled.push(socket);
  };
  clientSockets.subscribe(onSocket);
  try {
    return await connect({
      servers,
      name: opts.name,
      timeout: timeoutMs,
      reconnect: opts.reconnect ?? true,
      maxReconnectAttempts: opts.reconnect === false ? 0 : -1,
      reconnectTimeWait: 250,
      reconnectJitter: 100,
      pingInterval: 10_000,
      ...(opts.user !== undefined ? { user: opts.user } : {}),
      ...(opts.pass !== undefined ? { pass: opts.pass } : {}),
      ...(opts.tls !== undefined ? { tls: opts.tls } : {}),
      ...opts.extra,
    });
  } catch (err) {
    if (err instanceof AuthorizationError) throw new NatsAuthError(opts.url, { cause: err });
    const why = whyUnreachable(err, dialled, timeoutMs);
    // Only sockets still dialling or that never heard from one of these servers: another connection
    // opened at the same time to a server that answers has had its INFO by then.
    const ports = new Set(servers.map((s) => Number(/:(\d+)\/?$/.exec(s)?.[1] ?? 4222)));
    for (const s of dialled) if (!s.destroyed && (s.connecting || (s.bytesRead === 0 && ports.has(s.remotePort ?? -1)))) s.destroy();
    throw new NatsUnreachableError(opts.url, { cause: err, ...why });
  } finally {
    clientSockets.unsubscribe(onSocket);
  }
}

export interface ConnectionWatch {
  /** Resolves when the connection closes (or after stop()). */
  done: Promise<void>;
  stop(): void;
}

/** `3.2 s`, `850 ms`, `2 min 5 s`. */
function formatOutage(ms: number): string {
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)} s`;
  return `${Math.floor(ms / 60_000)} min ${Math.round((ms % 60_000) / 1000)} s`;
}

/**
 * Logs the connection's losses and recoveries for long-running commands:
 * one `warn` when the connection drops ("lost connection to nats://…;
 * reconnecting"), however many reconnect attempts follow, and one `info` when
 * it is back ("reconnected to nats://… after 3.2 s").
 */
export function watchConnection(nc: NatsConnection, log: Logger, now: () => number = Date.now): ConnectionWatch {
  let stopped = false;
  let lostAt: number | undefined;
  const iter = nc.status()[Symbol.asyncIterator]();
  const closed = nc.closed().then(() => ({ done: true as const, value: undefined }));
  const url = (server: string) => (/^[a-z]+:\/\//.test(server) ? server : `nats://${server}`);
  const done = (async () => {
    for (;;) {
      const r = await Promise.race([iter.next(), closed]);
      if (stopped || r.done) return;
      const s = r.value;
      if (s.type === 'disconnect' && lostAt === undefined) {
        lostAt = now();
        log.warn({ server: url(s.server) }, `lost connection to ${url(s.server)}; reconnecting`);
      } else if (s.type === 'reconnect') {
        const outage = lostAt === undefined ? undefined : now() - lostAt;
        lostAt = undefined;
        log.info({ server: url(s.server), outageMs: outage }, `reconnected to ${url(s.server)}${outage === undefined ? '' : ` after ${formatOutage(outage)}`}`);
      }
    }
  })().catch((err: unknown) => log.debug({ err }, 'connection status watch ended'));
  return {
    done,
    stop() {
      stopped = true;
      void iter.return?.();
    },
  };
}
