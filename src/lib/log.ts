/**
 * The pino root logger; components take `child({ mod })`, route actors `child({ route })`.
 * Lines are JSON (one object per line, for collectors) or, for a person at a
 * terminal, pretty: local clock time, level, message, then the fields. No
 * field is called `name`: pino-pretty shows it where a logger's name goes,
 * before the message (test/unit/log-lines.test.ts checks every log call).
 */
import { pino, type Logger, type DestinationStream } from 'pino';
import pretty from 'pino-pretty';
import { LOG_LEVELS, type LogFormat } from './config.ts';

export type { Logger };

export interface LogOptions {
  node?: string;
  level?: string;
  /** `auto` (default): pretty when the destination is stdout and stdout is a terminal, JSON otherwise. */
  format?: LogFormat;
  /** Where lines go; default stdout. */
  destination?: DestinationStream;
  /** Whether stdout is a terminal (decides `auto`); default process.stdout.isTTY. */
  isTTY?: boolean;
}

/** Whether `level` is one of pino's levels. */
export function isLogLevel(level: string): boolean {
  return (LOG_LEVELS as readonly string[]).includes(level);
}

/** The format `auto` resolves to. */
export function resolveLogFormat(format: LogFormat | undefined, isTTY: boolean): 'json' | 'pretty' {
  if (format === 'json' || format === 'pretty') return format;
  return isTTY ? 'pretty' : 'json';
}

export function createLogger(opts: LogOptions = {}): Logger {
  const level = opts.level ?? process.env['LARS_LOG_LEVEL'] ?? 'info';
  if (!isLogLevel(level)) throw new RangeError(`unknown log level ${JSON.stringify(level)}; use one of ${LOG_LEVELS.join(', ')}`);
  const base = { node: opts.node ?? `pid-${process.pid}` };
  const isTTY = opts.isTTY ?? (opts.destination === undefined && process.stdout.isTTY === true);
  const format = resolveLogFormat(opts.format, isTTY);
  if (format === 'pretty') {
    const stream = pretty({
      colorize: isTTY,
      translateTime: 'SYS:HH:MM:ss.l',
      ignore: 'pid,hostname,node',
      messageFormat: '{if node}{node}: {end}{msg}',
      singleLine: true,
      sync: true,
      ...(opts.destination ? { destination: opts.destination } : {}),
    });
    return pino({ level, base }, stream);
  }
  return opts.destination ? pino({ level, base }, opts.destination) : pino({ level, base });
}

/** A logger that writes nothing (library default when the caller passes none). */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
