/**
 * Configuration shared by every `lars` command and by the library:
 * flags > environment (LARS_*) > config file (JSON) > defaults.
 *
 * Every source is validated: a config file may only hold the keys below
 * (an unknown key is named, with the closest known key when one is near),
 * each value must have the key's type, and the values must make sense
 * together. Problems are ConfigErrors naming where the value came from.
 */
import { readFileSync, existsSync } from 'node:fs';
import { hostname } from 'node:os';
import { DEFAULT_PARTITIONS, DEFAULT_PREFIX, MAX_PARTITIONS, isValidPrefix } from '../../schemas/subjects.ts';
import { ConfigError } from './errors.ts';
import { redactNatsUrl } from './nats-url.ts';

/** pino's levels, most verbose first, and `silent`. */
export const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

/** `auto`: human-readable on a terminal, JSON lines otherwise. */
export const LOG_FORMATS = ['auto', 'json', 'pretty'] as const;
export type LogFormat = (typeof LOG_FORMATS)[number];

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
  logFormat: LogFormat;
  /** Where local state lives (nats-server store, embedded ClickHouse). */
  dataDir: string;
  /** ClickHouse server URL; empty means the embedded engine (chdb) under dataDir. */
  clickhouseUrl: string;
  clickhouseUser: string;
  clickhousePassword: string;
  clickhouseDatabase: string;
  /** ClickHouse cluster name (in every server's remote_servers); empty = one server. */
  clickhouseCluster: string;
  /** Local tables on ReplicatedMergeTree on the cluster: 'true' or 'false'. */
  clickhouseReplicated: string;
  /** Replicas of streams and KV buckets: 'auto' (3 on a NATS cluster, 1 on one server) or a count 1..5. */
  replicas: string;
  /** NATS user and password (or put them in the URL: nats://user:pass@host:4222). */
  natsUser: string;
  natsPass: string;
  /** NATS token (or in the URL: nats://token@host:4222). */
  natsToken: string;
  /** File holding the NATS user's NKey seed (SU...). */
  natsNkey: string;
  /** NATS credentials file (.creds: the user's JWT and NKey seed). */
  natsCreds: string;
  /** NATS TLS: CA, client certificate and key files (PEM); any one set turns TLS on. */
  natsTlsCa: string;
  natsTlsCert: string;
  natsTlsKey: string;
  /** Bearer token for the web console's operator actions; empty = actions off. */
  consoleToken: string;
  /** What the console token guards: `actions` (operator actions only) or `all` (reading too). */
  consoleAuth: string;
  /** Address every HTTP listener binds (metrics and health, the console, the sidecar's API): loopback unless told otherwise. */
  httpHost: string;
}

export interface ConfigKeySpec {
  flag: string;
  env: string;
  kind: 'string' | 'int';
  help: string;
  /** Flag placeholder in help texts. */
  placeholder: string;
  choices?: readonly string[];
}

/** Each key: its flag name, environment variable and kind. */
export const CONFIG_KEYS = {
  natsUrl: { flag: 'nats', env: 'LARS_NATS_URL', kind: 'string', placeholder: 'url', help: 'NATS URL(s), comma separated' },
  prefix: { flag: 'prefix', env: 'LARS_PREFIX', kind: 'string', placeholder: 'token', help: 'subject prefix' },
  partitions: { flag: 'partitions', env: 'LARS_PARTITIONS', kind: 'int', placeholder: 'n', help: 'report partitions (fixed per cluster)' },
  nodeId: { flag: 'node-id', env: 'LARS_NODE_ID', kind: 'string', placeholder: 'id', help: 'id of this process on the bus' },
  logLevel: { flag: 'log-level', env: 'LARS_LOG_LEVEL', kind: 'string', placeholder: 'level', help: 'log level', choices: LOG_LEVELS },
  logFormat: { flag: 'log-format', env: 'LARS_LOG_FORMAT', kind: 'string', placeholder: 'format', help: 'log lines: pretty on a terminal and JSON otherwise (auto), or forced', choices: LOG_FORMATS },
  dataDir: { flag: 'data-dir', env: 'LARS_DATA_DIR', kind: 'string', placeholder: 'dir', help: 'local state directory' },
  clickhouseUrl: { flag: 'clickhouse-url', env: 'LARS_CLICKHOUSE_URL', kind: 'string', placeholder: 'url', help: 'ClickHouse HTTP URL; unset = embedded chdb' },
  clickhouseUser: { flag: 'clickhouse-user', env: 'LARS_CLICKHOUSE_USER', kind: 'string', placeholder: 'user', help: 'ClickHouse user' },
  clickhousePassword: { flag: 'clickhouse-password', env: 'LARS_CLICKHOUSE_PASSWORD', kind: 'string', placeholder: 'password', help: 'ClickHouse password' },
  clickhouseDatabase: { flag: 'clickhouse-database', env: 'LARS_CLICKHOUSE_DATABASE', kind: 'string', placeholder: 'name', help: 'ClickHouse database' },
  clickhouseCluster: { flag: 'clickhouse-cluster', env: 'LARS_CLICKHOUSE_CLUSTER', kind: 'string', placeholder: 'name', help: 'ClickHouse cluster to shard the tables over (every server in clickhouse-url)' },
  clickhouseReplicated: { flag: 'clickhouse-replicated', env: 'LARS_CLICKHOUSE_REPLICATED', kind: 'string', placeholder: 'bool', help: 'ReplicatedMergeTree on the cluster (needs Keeper)', choices: ['false', 'true'] },
  replicas: { flag: 'replicas', env: 'LARS_REPLICAS', kind: 'string', placeholder: 'auto|n', help: 'replicas of streams and KV buckets: auto = 3 on a NATS cluster, 1 on one server' },
  natsUser: { flag: 'nats-user', env: 'LARS_NATS_USER', kind: 'string', placeholder: 'user', help: 'NATS user' },
  natsPass: { flag: 'nats-pass', env: 'LARS_NATS_PASS', kind: 'string', placeholder: 'password', help: 'NATS password' },
  natsToken: { flag: 'nats-token', env: 'LARS_NATS_TOKEN', kind: 'string', placeholder: 'token', help: 'NATS token' },
  natsNkey: { flag: 'nats-nkey', env: 'LARS_NATS_NKEY', kind: 'string', placeholder: 'file', help: "file with the NATS user's NKey seed" },
  natsCreds: { flag: 'nats-creds', env: 'LARS_NATS_CREDS', kind: 'string', placeholder: 'file', help: 'NATS credentials file (.creds)' },
  natsTlsCa: { flag: 'nats-tls-ca', env: 'LARS_NATS_TLS_CA', kind: 'string', placeholder: 'file', help: 'CA certificate (PEM) to verify the NATS servers' },
  natsTlsCert: { flag: 'nats-tls-cert', env: 'LARS_NATS_TLS_CERT', kind: 'string', placeholder: 'file', help: 'client certificate (PEM) for NATS' },
  natsTlsKey: { flag: 'nats-tls-key', env: 'LARS_NATS_TLS_KEY', kind: 'string', placeholder: 'file', help: 'client key (PEM) for NATS' },
  consoleToken: { flag: 'console-token', env: 'LARS_CONSOLE_TOKEN', kind: 'string', placeholder: 'token', help: "the web console's operator actions need this bearer token; unset = actions off" },
  consoleAuth: { flag: 'console-auth', env: 'LARS_CONSOLE_AUTH', kind: 'string', placeholder: 'what', help: 'what the console token guards: operator actions only, or all of the console (reading too)', choices: ['actions', 'all'] },
  httpHost: { flag: 'http-host', env: 'LARS_HTTP_HOST', kind: 'string', placeholder: 'addr', help: 'address every HTTP listener binds (metrics, health, console, sidecar API); 0.0.0.0 for every interface' },
} as const satisfies Record<keyof LarsConfig, ConfigKeySpec>;

export function defaultConfig(): LarsConfig {
  return {
    natsUrl: 'nats://127.0.0.1:4222',
    prefix: DEFAULT_PREFIX,
    partitions: DEFAULT_PARTITIONS,
    nodeId: `${hostname()}-${process.pid}`,
    logLevel: 'info',
    logFormat: 'auto',
    dataDir: './.lars',
    clickhouseUrl: '',
    clickhouseUser: 'default',
    clickhousePassword: '',
    clickhouseDatabase: 'lars',
    clickhouseCluster: '',
    clickhouseReplicated: 'false',
    replicas: 'auto',
    natsUser: '',
    natsPass: '',
    natsToken: '',
    natsNkey: '',
    natsCreds: '',
    natsTlsCa: '',
    natsTlsCert: '',
    natsTlsKey: '',
    consoleToken: '',
    consoleAuth: 'actions',
    httpHost: '127.0.0.1',
  };
}

export interface ConfigSources {
  /** Parsed flags by flag name (string values). */
  flags?: Record<string, string | undefined>;
  env?: NodeJS.ProcessEnv;
  /** Config file path; default LARS_CONFIG, else ./lars.config.json when present. */
  file?: string;
}

/** Levenshtein distance, for "did you mean". */
function distance(a: string, b: string): number {
  const prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    let diag = prev[0]!;
    prev[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const up = prev[j]!;
      prev[j] = Math.min(up + 1, prev[j - 1]! + 1, diag + (a[i - 1] === b[j - 1] ? 0 : 1));
      diag = up;
    }
  }
  return prev[b.length]!;
}

/** The candidate closest to `word` (case-insensitive), when it is close enough to be a likely typo. */
export function closest(word: string, candidates: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestD = Infinity;
  for (const c of candidates) {
    const d = distance(word.toLowerCase(), c.toLowerCase());
    if (d < bestD) {
      best = c;
      bestD = d;
    }
  }
  return best !== undefined && bestD <= Math.max(1, Math.floor(best.length / 3)) ? best : undefined;
}

function jsonType(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  if (typeof v === 'object') return 'an object';
  return `a ${typeof v} (${JSON.stringify(v)})`;
}

/** Checks a parsed config file: known keys only, each with its type. Returns the problems, empty when none. */
export function checkConfigFile(values: Record<string, unknown>): string[] {
  const problems: string[] = [];
  const keys = Object.keys(CONFIG_KEYS);
  for (const [k, v] of Object.entries(values)) {
    const spec = (CONFIG_KEYS as Record<string, ConfigKeySpec>)[k];
    if (!spec) {
      const near = closest(k, keys);
      problems.push(`unknown key ${JSON.stringify(k)}${near ? `; did you mean ${JSON.stringify(near)}?` : ` (known: ${keys.join(', ')})`}`);
      continue;
    }
    if (v === null) continue;
    if (spec.kind === 'int' && !(typeof v === 'number' && Number.isInteger(v))) problems.push(`${k} must be an integer (a JSON number), got ${jsonType(v)}`);
    if (spec.kind === 'string' && typeof v !== 'string') problems.push(`${k} must be a string, got ${jsonType(v)}`);
  }
  return problems;
}

function readConfigFile(filePath: string): Record<string, unknown> {
  let text: string;
  try {
    text = readFileSync(filePath, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const why = code === 'ENOENT' ? 'there is no such file' : code === 'EACCES' ? 'permission denied' : (err as Error).message;
    throw new ConfigError(`cannot read config file ${filePath}: ${why}`, { cause: err });
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    throw new ConfigError(`cannot read config file ${filePath}: it is not JSON (${(err as Error).message})`, { cause: err });
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw new ConfigError(`config file ${filePath} must hold a JSON object, got ${jsonType(parsed)}`);
  }
  const values = parsed as Record<string, unknown>;
  const problems = checkConfigFile(values);
  if (problems.length > 0) throw new ConfigError(`config file ${filePath}: ${problems.join('; ')}`);
  return values;
}

export function loadConfig(src: ConfigSources = {}): LarsConfig {
  const env = src.env ?? process.env;
  const cfg = defaultConfig();
  const filePath = src.file ?? env['LARS_CONFIG'] ?? (existsSync('lars.config.json') ? 'lars.config.json' : undefined);
  const fileValues = filePath ? readConfigFile(filePath) : {};
  const out = cfg as unknown as Record<string, string | number>;
  // where each value came from, for the messages about it
  const origins: Record<string, string> = {};
  const from = (key: keyof LarsConfig): string => origins[key] ?? key;
  for (const [key, s] of Object.entries(CONFIG_KEYS)) {
    const spec: ConfigKeySpec = s;
    const fromFlag = src.flags?.[spec.flag];
    const fromEnv = env[spec.env];
    const fromFile = fileValues[key];
    const raw = fromFlag ?? (fromEnv !== undefined && fromEnv !== '' ? fromEnv : undefined) ?? fromFile;
    if (raw === undefined || raw === null) continue;
    const origin = fromFlag !== undefined ? `--${spec.flag}` : fromEnv ? spec.env : `${filePath}:${key}`;
    origins[key] = origin;
    if (spec.kind === 'int') {
      const n = typeof raw === 'number' ? raw : typeof raw === 'string' && /^\s*-?\d+\s*$/.test(raw) ? Number(raw) : NaN;
      if (!Number.isInteger(n)) throw new ConfigError(`${origin} must be an integer, got ${JSON.stringify(raw)}`);
      out[key] = n;
    } else {
      if (typeof raw !== 'string') throw new ConfigError(`${origin} must be a string, got ${jsonType(raw)}`);
      if (spec.choices && !spec.choices.includes(raw)) {
        throw new ConfigError(`${origin} must be one of ${spec.choices.join(', ')}, got ${JSON.stringify(raw)}`);
      }
      out[key] = raw;
    }
  }
  if (!isValidPrefix(cfg.prefix)) throw new ConfigError(`${from('prefix')} must be one token of [A-Za-z0-9_-], got ${JSON.stringify(cfg.prefix)}`);
  if (cfg.partitions < 1 || cfg.partitions > MAX_PARTITIONS) throw new ConfigError(`${from('partitions')} must be in 1..${MAX_PARTITIONS}, got ${cfg.partitions}`);
  for (const u of cfg.natsUrl.split(',')) {
    if (!/^(nats|tls|ws|wss):\/\/[^\s]+$/.test(u.trim()) && !/^[\w.-]+:\d+$/.test(u.trim())) {
      throw new ConfigError(`bad NATS URL ${JSON.stringify(redactNatsUrl(u))} in ${from('natsUrl')}: use nats://host:port (or tls://, ws://, wss://, host:port), comma separated for several`);
    }
  }
  for (const u of cfg.clickhouseUrl ? cfg.clickhouseUrl.split(',') : []) {
    if (!/^https?:\/\//.test(u.trim())) throw new ConfigError(`${from('clickhouseUrl')} must start with http:// or https://, got ${JSON.stringify(u.trim())}`);
  }
  if (cfg.clickhouseCluster) {
    if (!/^[A-Za-z_][A-Za-z0-9_-]{0,62}$/.test(cfg.clickhouseCluster)) throw new ConfigError(`${from('clickhouseCluster')} must be a name of [A-Za-z0-9_-], got ${JSON.stringify(cfg.clickhouseCluster)}`);
    if (!cfg.clickhouseUrl) throw new ConfigError(`a clickhouse cluster (${from('clickhouseCluster')}) needs clickhouse-url: the HTTP URL of every server of the cluster, comma separated`);
  }
  if (!/^[A-Za-z0-9.:_-]{1,253}$/.test(cfg.httpHost)) throw new ConfigError(`${from('httpHost')} must be an address or host name (127.0.0.1, 0.0.0.0, ::1), got ${JSON.stringify(cfg.httpHost)}`);
  if (cfg.consoleAuth === 'all' && !cfg.consoleToken) throw new ConfigError(`${from('consoleAuth')} all guards reading the console with its token, and no token is set: set console-token (LARS_CONSOLE_TOKEN)`);
  if (!/^(auto|[1-5])$/.test(cfg.replicas)) throw new ConfigError(`${from('replicas')} must be auto or a count from 1 to 5, got ${JSON.stringify(cfg.replicas)}`);
  return cfg;
}

/** The replica count of a config: 'auto' or a number. */
export function replicasOf(cfg: Pick<LarsConfig, 'replicas'>): number | 'auto' {
  return cfg.replicas === 'auto' ? 'auto' : Number(cfg.replicas);
}
