/**
 * Configuration shared by every `lars` command and by the library:
 * flags > environment (LARS_*) > config file (JSON) > defaults.
 */
import { readFileSync, existsSync } from 'node:fs';
import { hostname } from 'node:os';
import { DEFAULT_PARTITIONS, DEFAULT_PREFIX, MAX_PARTITIONS, isValidPrefix } from '../schemas/subjects.ts';
import { ConfigError } from './errors.ts';

export interface LarsConfig {
  /** NATS server URL(s), comma separated. */
  natsUrl: string;
  /** Subject prefix, one token. */
  prefix: string;
  /** Report partitions P; fixed per cluster. */
  partitions: number;
  /** This process' id on the bus (sender of its messages). */
  nodeId: string;
  logLevel: string;
  /** Where local state lives (nats-server store, embedded ClickHouse). */
  dataDir: string;
  /** ClickHouse server URL; empty means the embedded engine (chdb) under dataDir. */
  clickhouseUrl: string;
  clickhouseUser: string;
  clickhousePassword: string;
  clickhouseDatabase: string;
}

/** Each key: its flag name, environment variable and kind. */
export const CONFIG_KEYS = {
  natsUrl: { flag: 'nats', env: 'LARS_NATS_URL', kind: 'string', help: 'NATS URL(s), comma separated' },
  prefix: { flag: 'prefix', env: 'LARS_PREFIX', kind: 'string', help: 'subject prefix' },
  partitions: { flag: 'partitions', env: 'LARS_PARTITIONS', kind: 'int', help: 'report partitions (fixed per cluster)' },
  nodeId: { flag: 'node-id', env: 'LARS_NODE_ID', kind: 'string', help: 'id of this process on the bus' },
  logLevel: { flag: 'log-level', env: 'LARS_LOG_LEVEL', kind: 'string', help: 'pino level: trace..fatal, silent' },
  dataDir: { flag: 'data-dir', env: 'LARS_DATA_DIR', kind: 'string', help: 'local state directory' },
  clickhouseUrl: { flag: 'clickhouse-url', env: 'LARS_CLICKHOUSE_URL', kind: 'string', help: 'ClickHouse HTTP URL; unset = embedded chdb' },
  clickhouseUser: { flag: 'clickhouse-user', env: 'LARS_CLICKHOUSE_USER', kind: 'string', help: 'ClickHouse user' },
  clickhousePassword: { flag: 'clickhouse-password', env: 'LARS_CLICKHOUSE_PASSWORD', kind: 'string', help: 'ClickHouse password' },
  clickhouseDatabase: { flag: 'clickhouse-database', env: 'LARS_CLICKHOUSE_DATABASE', kind: 'string', help: 'ClickHouse database' },
} as const satisfies Record<keyof LarsConfig, { flag: string; env: string; kind: 'string' | 'int'; help: string }>;

export function defaultConfig(): LarsConfig {
  return {
    natsUrl: 'nats://127.0.0.1:4222',
    prefix: DEFAULT_PREFIX,
    partitions: DEFAULT_PARTITIONS,
    nodeId: `${hostname()}-${process.pid}`,
    logLevel: 'info',
    dataDir: './.lars',
    clickhouseUrl: '',
    clickhouseUser: 'default',
    clickhousePassword: '',
    clickhouseDatabase: 'lars',
  };
}

export interface ConfigSources {
  /** Parsed flags by flag name (string values). */
  flags?: Record<string, string | undefined>;
  env?: NodeJS.ProcessEnv;
  /** Config file path; default LARS_CONFIG, else ./lars.config.json when present. */
  file?: string;
}

export function loadConfig(src: ConfigSources = {}): LarsConfig {
  const env = src.env ?? process.env;
  const cfg = defaultConfig();
  const filePath = src.file ?? env['LARS_CONFIG'] ?? (existsSync('lars.config.json') ? 'lars.config.json' : undefined);
  let fileValues: Record<string, unknown> = {};
  if (filePath) {
    try {
      fileValues = JSON.parse(readFileSync(filePath, 'utf8')) as Record<string, unknown>;
    } catch (err) {
      throw new ConfigError(`cannot read config file ${filePath}: ${(err as Error).message}`, { cause: err });
    }
    if (typeof fileValues !== 'object' || fileValues === null || Array.isArray(fileValues)) {
      throw new ConfigError(`config file ${filePath} must hold a JSON object`);
    }
  }
  const out = cfg as unknown as Record<string, string | number>;
  for (const [key, spec] of Object.entries(CONFIG_KEYS)) {
    const fromFlag = src.flags?.[spec.flag];
    const fromEnv = env[spec.env];
    const fromFile = fileValues[key];
    const raw = fromFlag ?? (fromEnv !== undefined && fromEnv !== '' ? fromEnv : undefined) ?? fromFile;
    if (raw === undefined || raw === null) continue;
    const origin = fromFlag !== undefined ? `--${spec.flag}` : fromEnv ? spec.env : `${filePath}:${key}`;
    if (spec.kind === 'int') {
      const n = typeof raw === 'number' ? raw : Number(raw);
      if (!Number.isInteger(n)) throw new ConfigError(`${origin} must be an integer, got ${JSON.stringify(raw)}`);
      out[key] = n;
    } else {
      if (typeof raw !== 'string') throw new ConfigError(`${origin} must be a string`);
      out[key] = raw;
    }
  }
  if (!isValidPrefix(cfg.prefix)) throw new ConfigError(`prefix must be one token of [A-Za-z0-9_-], got ${JSON.stringify(cfg.prefix)}`);
  if (cfg.partitions < 1 || cfg.partitions > MAX_PARTITIONS) throw new ConfigError(`partitions must be in 1..${MAX_PARTITIONS}`);
  for (const u of cfg.natsUrl.split(',')) {
    if (!/^(nats|tls|ws|wss):\/\/[^\s]+$/.test(u.trim()) && !/^[\w.-]+:\d+$/.test(u.trim())) {
      throw new ConfigError(`bad NATS URL ${JSON.stringify(u)}`);
    }
  }
  if (cfg.clickhouseUrl && !/^https?:\/\//.test(cfg.clickhouseUrl)) {
    throw new ConfigError(`clickhouse URL must start with http:// or https://, got ${JSON.stringify(cfg.clickhouseUrl)}`);
  }
  return cfg;
}
