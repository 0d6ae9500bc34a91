/** The pino root logger; components take `child({ mod })`, route actors `child({ route })`. */
import { pino, type Logger, type DestinationStream } from 'pino';

export type { Logger };

export interface LogOptions {
  node?: string;
  level?: string;
  destination?: DestinationStream;
}

export function createLogger(opts: LogOptions = {}): Logger {
  const level = opts.level ?? process.env['LARS_LOG_LEVEL'] ?? 'info';
  const base = { node: opts.node ?? `pid-${process.pid}` };
  return opts.destination ? pino({ level, base }, opts.destination) : pino({ level, base });
}

/** A logger that writes nothing (library default when the caller passes none). */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
