/** `lars node`: runs a route node until stopped. */
import { connectNats, natsOptionsFromConfig, redactNatsUrl, watchConnection, type NatsConnection } from '../../nats/connect.ts';
import { names } from '../../../schemas/subjects.ts';
import { Registry } from '../../registry/registry.ts';
import { RouteStore } from '../../registry/route-store.ts';
import { CheckpointStore } from '../../cluster/checkpoints.ts';
import { RouteNode } from '../../node/route-node.ts';
import { createLogger } from '../../lib/log.ts';
import { ensureStreams } from '../../nats/streams.ts';
import { leaseMsOf, nodeOwnership } from '../../cluster/index.ts';
import { startWhenSettled } from '../start-retry.ts';
import { UsageError } from '../../lib/errors.ts';
import type { Command } from '../command.ts';
import { closeConnection, withLifecycle } from '../../lib/lifecycle.ts';
import { requireJetStream } from '../../nats/natsd.ts';
import { HTTP_FLAGS, httpSettings, serveNodeHttp } from '../metrics.ts';
import { ConsoleBackend } from '../../console/backend.ts';
import { createConsoleHandler } from '../../console/server.ts';
import { consoleEngine } from './console.ts';
import { XDS_FLAGS, lbPolicy, startXds, xdsPort, type XdsServeSettings } from './xds.ts';
import { registerXdsMetrics } from '../../xds/metrics.ts';

export const nodeCommand: Command = {
  name: 'node',
  summary: 'run a route node (route actors for the partitions it owns)',
  usage: 'lars node [--own <partitions>] [flags]',
  flags: {
    own: {
      help: 'pin this node to these partitions, e.g. 0-31,40, and take no leases (give every pinned node a disjoint set covering all)',
      placeholder: 'partitions',
      defaultText: 'shared with the other nodes by leases',
    },
    'lease-ms': { help: 'without --own: partitions are shared by leases; one not renewed for this long is taken over', placeholder: 'ms', defaultText: '2000' },
    ...HTTP_FLAGS,
    console: { help: 'with --http: serve the web console on the same port (actions need --console-token)', choices: ['on', 'off'] as const, defaultText: 'on' },
    xds: { help: 'also serve every route over xDS on this port (as `lars xds` does; 0: any free port)', placeholder: 'port', defaultText: 'off' },
    ...XDS_FLAGS,
  },
  examples: [['lars node --own 0-31', 'own the first half of 64 partitions']],
  async run(_args, flags, ctx) {
    const cfg = ctx.config;
    const own = typeof flags['own'] === 'string' ? parsePartitions(flags['own'], cfg.partitions) : undefined;
    // every flag is checked before anything connects: a bad value is a usage error, whatever NATS does
    leaseMsOf(flags['lease-ms']);
    const http = httpSettings(flags);
    const withConsole = flags['console'] ?? 'on';
    if (withConsole !== 'on' && withConsole !== 'off') throw new UsageError(`--console takes on or off, got ${JSON.stringify(withConsole)}`);
    if (flags['console'] !== undefined && !http) throw new UsageError('--console needs --http <port>');
    const xdsAt = xdsPort(typeof flags['xds'] === 'string' ? flags['xds'] : undefined, 'xds');
    if (xdsAt === undefined && (flags['xds-host'] !== undefined || flags['lb'] !== undefined)) throw new UsageError('--xds-host and --lb need --xds <port>');
    const xds: XdsServeSettings | undefined = xdsAt === undefined ? undefined : { port: xdsAt, host: typeof flags['xds-host'] === 'string' ? flags['xds-host'] : '127.0.0.1', lb: lbPolicy(typeof flags['lb'] === 'string' ? flags['lb'] : undefined) };
    const log = createLogger({ node: cfg.nodeId, level: cfg.logLevel, format: cfg.logFormat });
    return withLifecycle(ctx, async (life) => {
      // the port first: one taken fails the command before anything connects
      const web = http && (await serveNodeHttp({ settings: http, host: cfg.httpHost, log, labels: { node: cfg.nodeId } }));
      if (web) life.add('HTTP server', () => web.close());
      // No async stack traces: the client would build two Error objects per KV write (thousands at a takeover).
      const nc = await connectNats({ ...natsOptionsFromConfig(cfg), name: `lars-node-${cfg.nodeId}`, extra: { noAsyncTraces: true } });
      life.add('NATS connection', () => closeConnection(nc));
      const status = watchConnection(nc, log);
      life.add('connection watch', () => status.stop());
      await startWhenSettled('the route node', () => requireJetStream(nc, cfg.natsUrl), log, life.stopped);
      web?.connect(nc);
      // Leases and membership on a connection of their own: a renewal must not queue behind thousands of
      // route-state writes (a node taking many routes over would otherwise let its own leases look stale).
      const ctl = own === undefined ? await connectNats({ ...natsOptionsFromConfig(cfg), name: `lars-node-${cfg.nodeId}-leases`, extra: { noAsyncTraces: true } }) : undefined;
      if (ctl) life.add('NATS connection (leases)', () => closeConnection(ctl));
      // What the node opens and reads at start is made or bound here, waiting while the servers settle (a
      // server lost or restarting while the node starts): a start that fails part way stops what it started
      // and is tried again with a fresh ownership.
      const node = await startWhenSettled(
        'the route node',
        async () => {
          const ownership = nodeOwnership({ nc: ctl ?? nc, nodeId: cfg.nodeId, prefix: cfg.prefix, partitions: cfg.partitions, log, own, leaseMs: flags['lease-ms'] });
          await prepareNode(nc, cfg.prefix);
          await ownership.prepare?.();
          return RouteNode.start({ nc, nodeId: cfg.nodeId, prefix: cfg.prefix, partitions: cfg.partitions, log, ownership, onStart: async (c, n) => void (await ensureStreams(c, n)) });
        },
        log,
        life.stopped,
      );
      life.add('route node', () => node.close());
      await web?.attach(node);
      if (xds) {
        const server = await startXds(nc, cfg, xds, log, life);
        if (web?.registry) registerXdsMetrics(web.registry, server);
      }
      if (web && withConsole === 'on') {
        const a = await consoleEngine(cfg, log, false);
        if (a.engine) life.add('ClickHouse (console)', () => a.engine!.close());
        const backend = await startWhenSettled('the web console', () => ConsoleBackend.start({ nc, prefix: cfg.prefix, log, engine: a.engine }), log, life.stopped);
        life.add('console backend', () => backend.close());
        web.mount(createConsoleHandler({ backend, token: cfg.consoleToken || undefined, readAuth: cfg.consoleAuth === 'all', analyticsOff: a.off, log }));
        log.info({ url: web.url, actions: cfg.consoleToken !== '', readAuth: cfg.consoleAuth === 'all' }, 'web console on the --http port');
      }
      log.info({ nats: redactNatsUrl(cfg.natsUrl), prefix: cfg.prefix, partitions: cfg.partitions }, 'route node ready; Ctrl-C to stop');
      await life.stopped;
      return 0;
    });
  },
};

/** The streams and buckets a route node opens at start, made when missing (idempotent). */
async function prepareNode(nc: NatsConnection, prefix: string): Promise<void> {
  const n = names(prefix);
  await ensureStreams(nc, n);
  await Registry.open(nc, n);
  await RouteStore.open(nc, n);
  await CheckpointStore.open(nc, prefix);
}

/** `0-31,40` → [0..31, 40], each within 0..partitions-1. */
export function parsePartitions(spec: string, partitions: number): number[] {
  const out = new Set<number>();
  for (const part of spec.split(',')) {
    const m = /^(\d+)(?:-(\d+))?$/.exec(part.trim());
    if (!m) throw new UsageError(`--own takes partition numbers and ranges like 0-31,40, got ${JSON.stringify(part)}`);
    const a = Number(m[1]);
    const b = m[2] === undefined ? a : Number(m[2]);
    if (a > b) throw new UsageError(`--own range ${part.trim()} runs backwards; write ${b}-${a}`);
    if (b >= partitions) throw new UsageError(`--own ${part.trim()} is outside 0..${partitions - 1} (the cluster has ${partitions} partitions)`);
    for (let p = a; p <= b; p++) out.add(p);
  }
  return [...out].sort((x, y) => x - y);
}
