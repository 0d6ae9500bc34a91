/**
 * `lars xds`: the xDS control plane (ADS, state of the world, v3, over
 * gRPC) serving every route to Envoy and proxyless gRPC clients until
 * stopped; `lars xds bootstrap` prints the bootstrap JSON such a client
 * reads. The xDS server is loaded only when asked for: it needs the
 * optional packages @grpc/grpc-js and @grpc/grpc-js-xds (the Envoy protos).
 */
import { createLogger, type Logger } from '../../lib/log.ts';
import { UsageError } from '../../lib/errors.ts';
import { LIMITS } from '../../../schemas/messages.ts';
import { names } from '../../../schemas/subjects.ts';
import type { Command, FlagValue } from '../command.ts';
import { closeConnection, withLifecycle, type Lifecycle } from '../../lib/lifecycle.ts';
import { connectNats, natsOptionsFromConfig, redactNatsUrl, watchConnection, type NatsConnection } from '../../nats/connect.ts';
import { requireJetStream } from '../../nats/natsd.ts';
import { HTTP_FLAGS, httpSettings, serveXdsHttp } from '../metrics.ts';
import { XdsLbPolicy } from '../../xds/resources.ts';
import { bootstrapOf } from '../../xds/bootstrap.ts';
import type { XdsServer } from '../../xds/server.ts';
import type { LarsConfig } from '../../lib/config.ts';

/** Default port of `lars xds` (kept here too so that the help needs no gRPC). */
export const XDS_DEFAULT_PORT = 15010;

function str(flags: Record<string, FlagValue>, name: string): string | undefined {
  const v = flags[name];
  if (Array.isArray(v)) return v[v.length - 1];
  return typeof v === 'string' ? v : undefined;
}

/** A port flag, 0..65535 (0: any free port). */
export function xdsPort(v: string | undefined, flag: string): number | undefined {
  if (v === undefined) return undefined;
  const n = /^\d{1,5}$/.test(v.trim()) ? Number(v.trim()) : Number.NaN;
  if (!(n >= 0 && n <= 65_535)) throw new UsageError(`--${flag} takes a port number (0-65535), got ${JSON.stringify(v)}`);
  return n;
}

export function lbPolicy(v: string | undefined): XdsLbPolicy | undefined {
  if (v === undefined) return undefined;
  if (!(Object.values(XdsLbPolicy) as string[]).includes(v)) throw new UsageError(`--lb takes ${Object.values(XdsLbPolicy).join(' or ')}, got ${JSON.stringify(v)}`);
  return v as XdsLbPolicy;
}

export interface XdsServeSettings {
  port: number;
  host: string;
  lb: XdsLbPolicy | undefined;
}

/**
 * Starts the xDS server on a connection (the `lars xds` process' own, or a
 * route node's with `lars node --xds`) and has the lifecycle close it.
 */
export async function startXds(nc: NatsConnection, cfg: LarsConfig, s: XdsServeSettings, log: Logger, life: Lifecycle): Promise<XdsServer> {
  const { XdsServer } = await import('../../xds/server.ts');
  const server = await XdsServer.start({ nc, names: names(cfg.prefix), log, port: s.port, host: s.host, serverId: `lars-xds-${cfg.nodeId}`, lb: s.lb });
  life.add('xDS server', () => server.close());
  return server;
}

export const XDS_FLAGS = {
  'xds-host': { help: 'the address the xDS server listens on (0.0.0.0: every interface)', placeholder: 'address', defaultText: '127.0.0.1' },
  lb: { help: "the balancing policy each cluster names: round_robin (gRPC ignores endpoint weights) or ring_hash (picks by weight); default ring_hash for routes with the hash strategy", choices: Object.values(XdsLbPolicy) },
};

export const xdsCommand: Command = {
  name: 'xds',
  summary: 'serve every route over xDS (LDS, RDS, CDS, EDS) to Envoy and proxyless gRPC; `lars xds bootstrap` prints a client bootstrap',
  usage: 'lars xds [bootstrap] [flags]',
  args: [{ name: 'bootstrap', help: 'print the bootstrap JSON a gRPC client reads (GRPC_XDS_BOOTSTRAP) instead of serving', optional: true }],
  flags: {
    'xds-port': { help: 'the port of the xDS server (0: any free port, logged)', placeholder: 'port', defaultText: String(XDS_DEFAULT_PORT) },
    ...XDS_FLAGS,
    ...HTTP_FLAGS,
    server: { help: 'bootstrap: host:port clients reach the xDS server at', placeholder: 'host:port', defaultText: `127.0.0.1:<xds-port>` },
    zone: { help: "bootstrap: the client's zone (its zone's hosts are preferred)", placeholder: 'zone' },
    cluster: { help: "bootstrap: the client's service name (node.cluster)", placeholder: 'name' },
  },
  examples: [
    ['lars xds --xds-port 15010 --xds-host 0.0.0.0 --http 9466', 'serve xDS on every interface, metrics on 9466'],
    ['lars xds bootstrap --server xds.internal:15010 --zone eu-1 --node-id orders-7 > bootstrap.json', 'a bootstrap for a gRPC client (GRPC_XDS_BOOTSTRAP=bootstrap.json, target xds:///lars-<modid>-<cmdid>)'],
  ],
  async run(args, flags, ctx) {
    const cfg = ctx.config;
    const port = xdsPort(str(flags, 'xds-port'), 'xds-port') ?? XDS_DEFAULT_PORT;
    if (args[0] === 'bootstrap') {
      const zone = str(flags, 'zone');
      if (zone !== undefined && (zone.length === 0 || zone.length > LIMITS.maxZoneLength)) throw new UsageError(`--zone takes a name of 1..${LIMITS.maxZoneLength} characters`);
      const server = str(flags, 'server') ?? `127.0.0.1:${port}`;
      if (!/^[^\s/]+:\d{1,5}$/.test(server)) throw new UsageError(`--server takes host:port, got ${JSON.stringify(server)}`);
      ctx.out(JSON.stringify(bootstrapOf({ serverUri: server, nodeId: cfg.nodeId, zone, cluster: str(flags, 'cluster') }), null, 2));
      return 0;
    }
    if (args[0] !== undefined) throw new UsageError(`lars xds takes no argument but bootstrap, got ${JSON.stringify(args[0])}`);
    for (const f of ['server', 'zone', 'cluster']) if (flags[f] !== undefined) throw new UsageError(`--${f} is for lars xds bootstrap`);
    const settings: XdsServeSettings = { port, host: str(flags, 'xds-host') ?? '127.0.0.1', lb: lbPolicy(str(flags, 'lb')) };
    const http = httpSettings(flags);
    const log = createLogger({ node: cfg.nodeId, level: cfg.logLevel, format: cfg.logFormat });
    return withLifecycle(ctx, async (life) => {
      const web = http && (await serveXdsHttp({ settings: http, host: cfg.httpHost, log, labels: { node: cfg.nodeId } }));
      if (web) life.add('HTTP server', () => web.close());
      const nc = await connectNats({ ...natsOptionsFromConfig(cfg), name: `lars-xds-${cfg.nodeId}` });
      life.add('NATS connection', () => closeConnection(nc));
      const status = watchConnection(nc, log);
      life.add('connection watch', () => status.stop());
      await requireJetStream(nc, cfg.natsUrl);
      web?.connect(nc);
      const server = await startXds(nc, cfg, settings, log, life);
      await web?.attach(server);
      log.info({ nats: redactNatsUrl(cfg.natsUrl), prefix: cfg.prefix, port: server.port, routes: server.stats().routes }, 'xds server ready; Ctrl-C to stop');
      await life.stopped;
      return 0;
    });
  },
};
