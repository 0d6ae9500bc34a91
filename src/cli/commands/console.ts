/**
 * `lars console`: the web console on its own port (loopback by default).
 * Reads NATS (routes, registry, route subjects) and, when it can open it,
 * ClickHouse for pictures over time and the audit trail; operator actions
 * need `--console-token` (env LARS_CONSOLE_TOKEN).
 */
import { connectNats, natsOptionsFromConfig, watchConnection } from '../../nats/connect.ts';
import { requireJetStream } from '../../natsd.ts';
import { createLogger, type Logger } from '../../log.ts';
import { engineOptionsFromConfig, openEngine, type AnalyticsEngine } from '../../analytics/engine.ts';
import type { LarsConfig } from '../../config.ts';
import { ConsoleBackend } from '../../console/backend.ts';
import { startConsoleServer } from '../../console/server.ts';
import { UsageError } from '../../errors.ts';
import type { Command } from '../command.ts';
import { closeConnection, withLifecycle } from '../lifecycle.ts';

/** The analytics engine for a console, or why there is none (shown on the page). */
export async function consoleEngine(cfg: LarsConfig, log: Logger, embedded: boolean): Promise<{ engine?: AnalyticsEngine; off?: string }> {
  if (!cfg.clickhouseUrl && !embedded) return { off: 'this process reads ClickHouse only from a server (--clickhouse-url); lars console also opens the embedded engine' };
  try {
    return { engine: await openEngine(engineOptionsFromConfig(cfg, log)) };
  } catch (err) {
    const msg = (err as Error).message.split('\n')[0] ?? String(err);
    log.warn({ err: msg }, 'console without analytics');
    return { off: `ClickHouse could not be opened: ${msg}` };
  }
}

export const consoleCommand: Command = {
  name: 'console',
  summary: 'serve the web console: routes, hosts and why, pictures over time, audit trail, operator actions',
  usage: 'lars console [--port <port>] [--host <addr>] [--analytics on|off]',
  flags: {
    port: { help: 'port to serve on (0: any free port)', placeholder: 'port', defaultText: '7070' },
    host: { help: 'address to listen on; operator actions need --console-token on anything but loopback', placeholder: 'addr', defaultText: '127.0.0.1' },
    analytics: { help: 'read ClickHouse for pictures over time and the audit trail', choices: ['on', 'off'] as const, defaultText: 'on' },
  },
  examples: [['LARS_CONSOLE_TOKEN=s3cret lars console --port 7070', 'the console with operator actions, on http://127.0.0.1:7070/']],
  async run(_args, flags, ctx) {
    const cfg = ctx.config;
    const portFlag = flags['port'] ?? '7070';
    if (typeof portFlag !== 'string' || !/^\d{1,5}$/.test(portFlag) || Number(portFlag) > 65535) throw new UsageError(`--port takes a port number (0-65535), got ${JSON.stringify(portFlag)}`);
    const host = typeof flags['host'] === 'string' ? flags['host'] : '127.0.0.1';
    const analytics = flags['analytics'] ?? 'on';
    if (analytics !== 'on' && analytics !== 'off') throw new UsageError(`--analytics takes on or off, got ${JSON.stringify(analytics)}`);
    const log = createLogger({ node: cfg.nodeId, level: cfg.logLevel, format: cfg.logFormat });
    return withLifecycle(ctx, async (life) => {
      const nc = await connectNats({ ...natsOptionsFromConfig(cfg), name: `lars-console-${cfg.nodeId}` });
      life.add('NATS connection', () => closeConnection(nc));
      const status = watchConnection(nc, log);
      life.add('connection watch', () => status.stop());
      await requireJetStream(nc, cfg.natsUrl);
      const a = analytics === 'off' ? { off: 'turned off (--analytics off)' } : await consoleEngine(cfg, log, true);
      if (a.engine) life.add('ClickHouse', () => a.engine!.close());
      const backend = await ConsoleBackend.start({ nc, prefix: cfg.prefix, log, engine: a.engine });
      life.add('console backend', () => backend.close());
      const server = await startConsoleServer({ backend, token: cfg.consoleToken || undefined, analyticsOff: a.off, log, port: Number(portFlag), host });
      life.add('HTTP server', () => server.close());
      ctx.out(`console at ${server.url}  (operator actions ${cfg.consoleToken ? 'on, with the token' : 'off: set LARS_CONSOLE_TOKEN'}; analytics ${a.engine ? 'on' : `off: ${a.off}`})`);
      log.info({ url: server.url, actions: cfg.consoleToken !== '', analytics: a.engine !== undefined }, 'console ready; Ctrl-C to stop');
      await life.stopped;
      return 0;
    });
  },
};
