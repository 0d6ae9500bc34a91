/** `lars agent`: runs the sidecar (Lars' UDP protocol and the HTTP API) until stopped. */
import { createLogger } from '../../lib/log.ts';
import { UsageError } from '../../lib/errors.ts';
import { LIMITS, isIPv4, isPort } from '../../../schemas/messages.ts';
import { registerSelf, SELF_DEFAULTS, type SelfRegisterOptions } from '../../agent/self-register.ts';
import { connect as tcpConnect } from 'node:net';
import { availableParallelism } from 'node:os';
import { StrategyName } from '../../../actors/strategies/types.ts';
import type { Command, CommandContext, FlagValue } from '../command.ts';
import { closeConnection, withLifecycle } from '../../lib/lifecycle.ts';
import { connectNats, natsOptionsFromConfig, redactNatsUrl, watchConnection } from '../../nats/connect.ts';
import { requireJetStream } from '../../nats/natsd.ts';
import { startWhenSettled } from '../start-retry.ts';
import { DEFAULT_UDP_HOST, DEFAULT_UDP_PORTS } from '../../sidecar/lars-udp.ts';
import { DEFAULT_HTTP_PORT } from '../../sidecar/http-api.ts';
import { HTTP_FLAGS, createRegistry, healthHandler, httpSettings, registerSidecarMetrics, sidecarReadiness, startMetricsServer, trackConnection, type Readiness } from '../metrics.ts';
import { Sidecar } from '../../sidecar/sidecar.ts';
import { DEFAULT_MAX_ROUTES } from '../../sidecar/route-budget.ts';

const STRATEGIES = Object.values(StrategyName);
/** Most threads `--threads` takes. */
const MAX_THREADS = 256;

function str(flags: Record<string, FlagValue>, name: string): string | undefined {
  const v = flags[name];
  if (Array.isArray(v)) return v[v.length - 1];
  return typeof v === 'string' ? v : undefined;
}

function port(v: string, flag: string, allowZero: boolean): number {
  const n = /^\d{1,5}$/.test(v.trim()) ? Number(v.trim()) : Number.NaN;
  if (!(n >= (allowZero ? 0 : 1) && n <= 65_535)) throw new UsageError(`--${flag} takes port numbers ${allowZero ? '0' : '1'}..65535, got ${JSON.stringify(v)}`);
  return n;
}

/** A host the sidecar registers for a route (`--register`). */
export type RegisterSpec = Pick<SelfRegisterOptions, 'modid' | 'cmdid' | 'ip' | 'port' | 'weight' | 'zone'>;

/** `<modid>/<cmdid>@<ip>:<port>[,weight[,zone]]`. */
export function parseRegisterSpec(spec: string): RegisterSpec {
  const m = /^(\d{1,10})\/(\d{1,10})@([0-9.]{7,15}):(\d{1,5})(?:,(\d{1,5})(?:,([^,]+))?)?$/.exec(spec.trim());
  const bad = (why: string): UsageError => new UsageError(`--register takes <modid>/<cmdid>@<ip>:<port>[,weight[,zone]], got ${JSON.stringify(spec)}: ${why}`);
  if (!m) throw bad('not of that form');
  const r: RegisterSpec = { modid: Number(m[1]), cmdid: Number(m[2]), ip: m[3]!, port: Number(m[4]) };
  if (r.modid > 0xffffffff || r.cmdid > 0xffffffff) throw bad('modid and cmdid are uint32');
  if (!isIPv4(r.ip)) throw bad('the ip is not an IPv4 address');
  if (!isPort(r.port)) throw bad('the port is not 1..65535');
  if (m[5] !== undefined) {
    r.weight = Number(m[5]);
    if (r.weight < LIMITS.minWeight || r.weight > LIMITS.maxWeight) throw bad(`the weight is not ${LIMITS.minWeight}..${LIMITS.maxWeight}`);
  }
  if (m[6] !== undefined) {
    if (m[6].length > LIMITS.maxZoneLength) throw bad(`the zone is longer than ${LIMITS.maxZoneLength}`);
    r.zone = m[6];
  }
  return r;
}

/** What the flags ask for, checked. */
export interface AgentCliOptions {
  udpPorts: number[];
  udpHost: string;
  httpPort: number;
  strategy: StrategyName | undefined;
  zone: string | undefined;
  maxRoutes: number;
  /** Threads serving the UDP ports. */
  threads: number;
  register: RegisterSpec[];
  registerTtlMs: number;
}

export function parseAgentFlags(flags: Record<string, FlagValue>): AgentCliOptions {
  const udpSpec = str(flags, 'udp-ports');
  const udpPorts = udpSpec === undefined ? [...DEFAULT_UDP_PORTS] : udpSpec.trim() === 'off' ? [] : udpSpec.split(',').map((p) => port(p, 'udp-ports', true));
  const httpSpec = str(flags, 'http-port');
  const httpPort = httpSpec === undefined ? DEFAULT_HTTP_PORT : port(httpSpec, 'http-port', true);
  const strategy = str(flags, 'strategy');
  if (strategy !== undefined && !(STRATEGIES as string[]).includes(strategy)) throw new UsageError(`--strategy must be one of ${STRATEGIES.join(', ')}, got ${JSON.stringify(strategy)}`);
  const maxSpec = str(flags, 'max-routes');
  const maxRoutes = maxSpec === undefined ? DEFAULT_MAX_ROUTES : /^\d{1,7}$/.test(maxSpec.trim()) ? Number(maxSpec.trim()) : Number.NaN;
  if (!(maxRoutes >= 1)) throw new UsageError(`--max-routes takes a number of routes 1..9999999, got ${JSON.stringify(maxSpec)}`);
  const threadSpec = str(flags, 'threads');
  const threads = threadSpec === undefined ? availableParallelism() : /^\d{1,3}$/.test(threadSpec.trim()) ? Number(threadSpec.trim()) : Number.NaN;
  if (!(threads >= 1 && threads <= MAX_THREADS)) throw new UsageError(`--threads takes a number of threads 1..${MAX_THREADS}, got ${JSON.stringify(threadSpec)}`);
  const zone = str(flags, 'zone');
  if (zone !== undefined && (zone.length === 0 || zone.length > LIMITS.maxZoneLength)) throw new UsageError(`--zone takes a name of 1..${LIMITS.maxZoneLength} characters`);
  const reg = flags['register'];
  const register = (Array.isArray(reg) ? reg : typeof reg === 'string' ? [reg] : []).map(parseRegisterSpec);
  const ttlSpec = str(flags, 'register-ttl');
  const registerTtlMs = ttlSpec === undefined ? SELF_DEFAULTS.ttlMs : /^\d{1,6}$/.test(ttlSpec.trim()) ? Number(ttlSpec.trim()) : Number.NaN;
  if (!(registerTtlMs >= LIMITS.minSelfTtlMs && registerTtlMs <= LIMITS.maxSelfTtlMs)) throw new UsageError(`--register-ttl takes ms within ${LIMITS.minSelfTtlMs}..${LIMITS.maxSelfTtlMs}, got ${JSON.stringify(ttlSpec)}`);
  return {
    register,
    registerTtlMs,
    udpPorts,
    udpHost: str(flags, 'udp-host') ?? DEFAULT_UDP_HOST,
    httpPort,
    strategy: strategy as StrategyName | undefined,
    zone,
    maxRoutes,
    threads,
  };
}

/** Runs the sidecar until SIGINT/SIGTERM (or ctx.stopSignal); returns the exit code. */
export async function runAgent(args: string[], flags: Record<string, FlagValue>, ctx: CommandContext): Promise<number> {
  if (args.length > 0) throw new UsageError(`unexpected argument ${JSON.stringify(args[0])}`);
  const o = parseAgentFlags(flags);
  if (o.udpPorts.length === 0 && o.httpPort === 0) throw new UsageError('both APIs are off (--udp-ports off, --http-port 0): nothing to serve');
  const http = httpSettings(flags);
  const cfg = ctx.config;
  const log = createLogger({ node: cfg.nodeId, level: cfg.logLevel, format: cfg.logFormat });
  return withLifecycle(ctx, async (life) => {
    // metrics and health, on --http and on the API port: one registry, one readiness
    const registry = http?.metrics !== false ? createRegistry({ labels: { node: cfg.nodeId } }) : undefined;
    let readiness: () => Readiness = () => ({ ready: false, reason: 'not connected to NATS yet' });
    const health = healthHandler({ registry, ready: () => readiness() });
    // the --http port first: one taken fails the command before anything connects
    const web = http && (await startMetricsServer({ port: http.port, host: cfg.httpHost, registry, ready: () => readiness(), log }));
    if (web) life.add('HTTP server (metrics and health)', () => web.close());
    // No async stack traces: the client would build two Error objects per acknowledged publish.
    const nc = await connectNats({ ...natsOptionsFromConfig(cfg), name: `lars-agent-${cfg.nodeId}`, extra: { noAsyncTraces: true } });
    life.add('NATS connection', () => closeConnection(nc));
    const status = watchConnection(nc, log);
    life.add('connection watch', () => status.stop());
    // routes are read from, and reports stored in, JetStream: without it every answer would be "not registered"
    await startWhenSettled('the sidecar', () => requireJetStream(nc, cfg.natsUrl), log, life.stopped);
    const conn = trackConnection(nc);
    life.add('connection state', () => conn.stop());
    readiness = () => ({ ready: false, reason: 'sidecar starting' });
    const sidecar = await Sidecar.start({
      nc,
      agent: { prefix: cfg.prefix, partitions: cfg.partitions, agentId: cfg.nodeId, ...(o.strategy ? { strategy: o.strategy } : {}), ...(o.zone ? { zone: o.zone } : {}) },
      udp: o.udpPorts.length > 0 ? { host: o.udpHost, ports: o.udpPorts } : undefined,
      http: o.httpPort > 0 ? { host: cfg.httpHost, port: o.httpPort, extra: health } : undefined,
      maxRoutes: o.maxRoutes,
      threads: o.threads,
      log,
    });
    life.add('sidecar', () => sidecar.close());
    if (registry) registerSidecarMetrics(registry, sidecar, nc, conn);
    readiness = sidecarReadiness(conn);
    // Registered last, stopped first: the services leave their routes (draining) while the sidecar still serves.
    for (const r of o.register) {
      const reg = await registerSelf({ nc, prefix: cfg.prefix, ...r, ttlMs: o.registerTtlMs, instance: `${cfg.nodeId} (lars agent)`, log, alive: () => answers(r.ip, r.port) });
      life.add(`registration ${r.modid}/${r.cmdid}@${r.ip}:${r.port}`, () => reg.stop());
    }
    const ready = { udp: sidecar.udp ? { host: o.udpHost, ports: sidecar.udp.ports(), threads: o.threads } : null, http: sidecar.http ? { host: cfg.httpHost, port: sidecar.http.port() } : null, metrics: web ? web.url : null };
    log.info({ nats: redactNatsUrl(cfg.natsUrl), prefix: cfg.prefix, ...ready }, 'sidecar ready; Ctrl-C to stop');
    ctx.note?.(`lars agent: UDP ${ready.udp ? `${ready.udp.host}:${ready.udp.ports.join(',')} (${o.threads} thread${o.threads > 1 ? 's' : ''})` : 'off'}, HTTP ${ready.http ? `http://${ready.http.host}:${ready.http.port}` : 'off'}${web ? `, metrics and health ${web.url}` : ''}`);
    await life.stopped;
    return 0;
  });
}

export const agentCommand: Command = {
  name: 'agent',
  summary: "run a sidecar for the services on this host: Lars' UDP protocol and an HTTP/JSON API over one shared route cache",
  usage: 'lars agent [--udp-ports 8888,8889,8890] [--http-port 8900] [--http 9464] [--strategy swrr] [--zone z] [flags]',
  flags: {
    'udp-ports': { help: "ports for Lars' UDP protocol, comma separated (every port answers every route); off = none", placeholder: 'ports', defaultText: DEFAULT_UDP_PORTS.join(',') },
    'udp-host': { help: 'address the UDP ports bind', placeholder: 'ip', defaultText: DEFAULT_UDP_HOST },
    'http-port': { help: 'port of the HTTP/JSON API (also /metrics, /readyz) on --http-host; 0 = off', placeholder: 'port', defaultText: String(DEFAULT_HTTP_PORT) },
    ...HTTP_FLAGS,
    strategy: { help: 'pick strategy', choices: STRATEGIES, defaultText: "the route's, else p2c_ewma" },
    zone: { help: "zone of this host: stamped on its reports, and picks prefer the zone's hosts (spilling to other zones as it weakens)", placeholder: 'zone' },
    threads: { help: "threads serving Lars' UDP ports (one agent, one NATS connection and the HTTP API stay in the main thread); 1 = the main thread serves them", placeholder: 'n', defaultText: 'the number of cores' },
    'max-routes': { help: 'routes local callers may make the sidecar follow; requests for more are refused', placeholder: 'n', defaultText: String(DEFAULT_MAX_ROUTES) },
    register: {
      help: 'register a service of this host for a route (repeatable): heartbeats while the service accepts TCP connections on ip:port; on stop it drains, then deregisters',
      placeholder: 'modid/cmdid@ip:port[,weight[,zone]]',
      multiple: true,
    },
    'register-ttl': { help: 'time to live of --register registrations: a service that stops answering leaves its route after this', placeholder: 'ms', defaultText: String(SELF_DEFAULTS.ttlMs) },
  },
  examples: [
    ['lars agent', 'UDP on 127.0.0.1:8888-8890, HTTP on 127.0.0.1:8900'],
    ['lars agent --udp-ports off --http-port 9000 --strategy lars', 'HTTP only, with Lars round robin and probing'],
    ['lars agent --register 7/1@10.0.0.5:8080,100,eu-1', 'also registers the service on 10.0.0.5:8080 for route 7/1'],
    ['lars agent --http 9464 --http-host 0.0.0.0', 'metrics and health on :9464 for Prometheus and a container health check (the API answers on every interface too)'],
  ],
  run: runAgent,
};

/** Whether something accepts TCP connections on ip:port (within 500 ms). */
function answers(ip: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = tcpConnect({ host: ip, port, timeout: 500 });
    const done = (ok: boolean): void => {
      sock.destroy();
      resolve(ok);
    };
    sock.once('connect', () => done(true));
    sock.once('timeout', () => done(false));
    sock.once('error', () => done(false));
  });
}
