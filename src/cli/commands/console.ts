/**
 * `lars console`: the web console on its own port (loopback by default).
 * Reads NATS (routes, registry, route subjects) and, when it can open it,
 * ClickHouse for pictures over time and the audit trail; operator actions
 * need `--console-token` (env LARS_CONSOLE_TOKEN), and reading too with
 * `--console-auth all`. The port is bound first: one taken fails the
 * command before anything connects.
 */
import { connectNats, natsOptionsFromConfig, watchConnection } from '../../nats/connect.ts';
import { requireJetStream } from '../../nats/natsd.ts';
import { startWhenSettled } from '../start-retry.ts';
import { createLogger, type Logger } from '../../lib/log.ts';
import { engineOptionsFromConfig, openEngine, type AnalyticsEngine } from '../../analytics/engine.ts';
import type { LarsConfig } from '../../lib/config.ts';
import { ConsoleBackend } from '../../console/backend.ts';
import { startConsoleServer } from '../../console/server.ts';
import { announceFile, announcedConsole } from '../../console/serve.ts';
import { UsageError } from '../../lib/errors.ts';
import { trackConnection } from '../../metrics/nats.ts';
import type { Command } from '../command.ts';
import { closeConnection, withLifecycle } from '../../lib/lifecycle.ts';

/** The analytics engine for a console, or why there is none (shown on the page). */
export async function consoleEngine(cfg: LarsConfig, log: Logger, embedded: boolean): Promise<{ engine?: AnalyticsEngine; off?: string }> {
  if (!cfg.clickhouseUrl && !embedded) return { off: 'this process reads ClickHouse only from a server (--clickhouse-url); lars console also opens the embedded engine' };
  try {
    return { engine: await openEngine(engineOptionsFromConfig(cfg, log)) };
  } catch (err) {
    const msg = (err as Error).message.split('\n')[0] ?? String(err);
    log.warn({ err: msg }, 'console without analytics');
    // The embedded engine opens its data in one process only: while `lars dev` holds it, its own console has the pictures.
    const demo = cfg.clickhouseUrl ? undefined : announcedConsole(announceFile(cfg.dataDir));
    if (demo) return { off: `the embedded ClickHouse is held by lars dev, whose own console at ${demo} has the pictures` };
    return { off: `ClickHouse could not be opened: ${msg}` };
  }
}

export const consoleCommand: Command = {
  name: 'console',
  summary: 'serve the web console: routes, hosts and why, pictures over time, audit trail, operator actions',
  usage: 'lars console [--port <port>] [--http-host <addr>] [--analytics on|off] [--console-token <token>] [--console-auth actions|all]',
  flags: {
    port: { help: 'port to serve on, on --http-host (0: any free port)', placeholder: 'port', defaultText: '7070' },
    analytics: { help: 'read ClickHouse for pictures over time and the audit trail', choices: ['on', 'off'] as const, defaultText: 'on' },
  },
  examples: [
    ['LARS_CONSOLE_TOKEN=s3cret lars console --port 7070', 'the console with operator actions, on http://127.0.0.1:7070/'],
    ['LARS_CONSOLE_TOKEN=s3cret lars console --http-host 0.0.0.0 --console-auth all', 'on every interface, and only those with the token see anything'],
  ],
  async run(_args, flags, ctx) {
    const cfg = ctx.config;
    const portFlag = flags['port'] ?? '7070';
    if (typeof portFlag !== 'string' || !/^\d{1,5}$/.test(portFlag) || Number(portFlag) > 65535) throw new UsageError(`--port takes a port number (0-65535), got ${JSON.stringify(portFlag)}`);
    const analytics = flags['analytics'] ?? 'on';
    if (analytics !== 'on' && analytics !== 'off') throw new UsageError(`--analytics takes on or off, got ${JSON.stringify(analytics)}`);
    const log = createLogger({ node: cfg.nodeId, level: cfg.logLevel, format: cfg.logFormat });
    return withLifecycle(ctx, async (life) => {
      const server = await startConsoleServer({ log, port: Number(portFlag), host: cfg.httpHost });
      life.add('HTTP server', () => server.close());
      const nc = await connectNats({ ...natsOptionsFromConfig(cfg), name: `lars-console-${cfg.nodeId}` });
      life.add('NATS connection', () => closeConnection(nc));
      const status = watchConnection(nc, log);
      life.add('connection watch', () => status.stop());
      await startWhenSettled('the console', () => requireJetStream(nc, cfg.natsUrl), log, life.stopped);
      const a = analytics === 'off' ? { off: 'turned off (--analytics off)' } : await consoleEngine(cfg, log, true);
      if (a.engine) life.add('ClickHouse', () => a.engine!.close());
      const backend = await startWhenSettled('the console', () => ConsoleBackend.start({ nc, prefix: cfg.prefix, log, engine: a.engine }), log, life.stopped);
      // stopped before its backend: requests meanwhile get 503 "stopping", not errors of a closed backend
      life.add('console backend', () => {
        server.detach();
        return backend.close();
      });
      const conn = trackConnection(nc);
      life.add('connection state', () => conn.stop());
      const readAuth = cfg.consoleAuth === 'all';
      server.attach({ backend, token: cfg.consoleToken || undefined, readAuth, analyticsOff: a.off, log }, () => (conn.connected() ? { ready: true } : { ready: false, reason: 'not connected to NATS' }));
      const reading = readAuth ? 'reading and actions with the token' : `reading open to whoever reaches the port; operator actions ${cfg.consoleToken ? 'with the token' : 'off: set LARS_CONSOLE_TOKEN'}`;
      ctx.out(`console at ${server.url}  (${reading}; analytics ${a.engine ? 'on' : `off: ${a.off}`})`);
      log.info({ url: server.url, actions: cfg.consoleToken !== '', readAuth, analytics: a.engine !== undefined }, 'console ready; Ctrl-C to stop');
      await life.stopped;
      return 0;
    });
  },
};
