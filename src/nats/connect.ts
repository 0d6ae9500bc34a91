/** Opens NATS connections with the project's defaults and one clear error when the server is away. */
import { channel } from 'node:diagnostics_channel';
import { readFileSync } from 'node:fs';
import type { Socket } from 'node:net';
import { AuthorizationError, connect, credsAuthenticator, nkeyAuthenticator, nkeys, type NatsConnection, type ConnectionOptions } from '@nats-io/transport-node';
import { ConfigError, NatsAuthError, NatsHint, NatsUnreachableError } from '../lib/errors.ts';
import type { LarsConfig } from '../lib/config.ts';
import type { Logger } from '../lib/log.ts';
import { hasUrlLogin, redactNatsUrl, splitNatsUrls, takeUrlLogin, type UrlLogin } from '../lib/nats-url.ts';

export type { NatsConnection };
export { redactNatsUrl };

/** How a connection logs in; at most one of user/pass, token, nkeySeed and creds. */
export interface NatsLogin {
  user?: string;
  pass?: string;
  token?: string;
  /** The user's NKey seed (`SU...`). */
  nkeySeed?: string;
  /** The text of a `.creds` file: the user's JWT and NKey seed. */
  creds?: string;
}

export interface ConnectOptions extends NatsLogin {
  /** URL(s), comma separated; each may carry credentials (nats://user:pass@host:4222, nats://token@host:4222). */
  url: string;
  name?: string;
  /** Keep reconnecting forever (long-running components); default true. */
  reconnect?: boolean;
  /** First-connect timeout, ms. */
  timeoutMs?: number;
  /** TLS: CA, client certificate and key, as PEM text. */
  tls?: { ca?: string; cert?: string; key?: string };
  /** Who connects: the settings a refused login's message tells to fix (default the `lars` command's). */
  hint?: NatsHint;
  extra?: Partial<ConnectionOptions>;
}

/**
 * How an SDK caller logs in to NATS (createAgent's options). Files are read
 * when connecting; a file that cannot be read is a ConfigError. Options left
 * out are taken from the environment: LARS_NATS_USER, LARS_NATS_PASS,
 * LARS_NATS_TOKEN, LARS_NATS_NKEY, LARS_NATS_CREDS (login, used only when no
 * login option is given and the URL carries none) and LARS_NATS_TLS_CA,
 * LARS_NATS_TLS_CERT, LARS_NATS_TLS_KEY (files, used only without `tls`).
 */
export interface NatsLoginOptions {
  /** User and password (or in the URL: nats://user:pass@host:4222). */
  user?: string;
  pass?: string;
  /** A token (or in the URL: nats://token@host:4222). */
  token?: string;
  /** The user's NKey seed (`SU...`)... */
  nkeySeed?: string;
  /** ...or a file holding it. */
  nkeySeedFile?: string;
  /** A NATS credentials file (`.creds`: the user's JWT and NKey seed). */
  credsFile?: string;
  /** TLS: the CA that signed the servers' certificates and the client's certificate and key; any one turns TLS on. */
  tls?: NatsTlsOptions;
}

/** TLS material as PEM text (`ca`, `cert`, `key`) or as files (`caFile`, `certFile`, `keyFile`), as in the NATS client. */
export interface NatsTlsOptions {
  ca?: string;
  cert?: string;
  key?: string;
  caFile?: string;
  certFile?: string;
  keyFile?: string;
}

function readSecretFile(what: string, path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (err) {
    throw new ConfigError(`cannot read the NATS ${what} file ${path}: ${(err as Error).message}`, { cause: err });
  }
}

/** The user seed in an NKey seed file (comments and blank lines around it are fine), checked. */
function nkeySeedOf(text: string, where: string): string {
  const seed = /\bSU[A-Z2-7]{50,}\b/.exec(text)?.[0];
  if (seed !== undefined) {
    try {
      nkeys.fromSeed(new TextEncoder().encode(seed));
      return seed;
    } catch {
      // said below, without the seed
    }
  }
  throw new ConfigError(`${where} holds no valid NATS user seed (a line starting with SU, as \`nsc\` or \`nk -gen user\` write it)`);
}

/** A `.creds` file's text, checked to hold a JWT and a user seed as the client reads them. */
function credsOf(text: string, path: string): string {
  const blocks = [...text.matchAll(/\s*(?:(?:[-]{3,}[^\n]*[-]{3,}\n)(.+)(?:\n\s*[-]{3,}[^\n]*[-]{3,}\n))/gi)].map((m) => m[1]!.trim());
  if (blocks.length < 2 || !/^S[A-Z][A-Z2-7]+$/.test(blocks[1]!)) {
    throw new ConfigError(`the NATS credentials file ${path} is not a .creds file: it must hold a USER JWT block and a USER NKEY SEED block, as \`nsc generate creds\` writes them`);
  }
  return text;
}

function tlsFromFiles(files: { ca?: string; cert?: string; key?: string }): ConnectOptions['tls'] {
  const tls: NonNullable<ConnectOptions['tls']> = {};
  if (files.ca) tls.ca = readSecretFile('TLS CA', files.ca);
  if (files.cert) tls.cert = readSecretFile('TLS certificate', files.cert);
  if (files.key) tls.key = readSecretFile('TLS key', files.key);
  return Object.keys(tls).length > 0 ? tls : undefined;
}

/** Where to connect and how to log in, files already read: plain data (a worker thread can be given it). */
export type ConnectSettings = Pick<ConnectOptions, 'url' | 'user' | 'pass' | 'token' | 'nkeySeed' | 'creds' | 'tls' | 'hint'>;

/** Connection options of a config: URL(s), login and TLS files (read now, so a bad path is a config error). */
export function natsOptionsFromConfig(cfg: Pick<LarsConfig, 'natsUrl' | 'natsUser' | 'natsPass' | 'natsToken' | 'natsNkey' | 'natsCreds' | 'natsTlsCa' | 'natsTlsCert' | 'natsTlsKey'>): ConnectSettings {
  const o: ConnectSettings = { url: cfg.natsUrl, hint: NatsHint.cli };
  if (cfg.natsUser) o.user = cfg.natsUser;
  if (cfg.natsPass) o.pass = cfg.natsPass;
  if (cfg.natsToken) o.token = cfg.natsToken;
  if (cfg.natsNkey) o.nkeySeed = nkeySeedOf(readSecretFile('NKey seed', cfg.natsNkey), `the NATS NKey seed file ${cfg.natsNkey}`);
  if (cfg.natsCreds) o.creds = credsOf(readSecretFile('credentials', cfg.natsCreds), cfg.natsCreds);
  const tls = tlsFromFiles({ ca: cfg.natsTlsCa, cert: cfg.natsTlsCert, key: cfg.natsTlsKey });
  if (tls) o.tls = tls;
  return o;
}

/** A config's login and TLS files as SDK options (createAgent), for agents a command makes. */
export function sdkLoginFromConfig(cfg: Pick<LarsConfig, 'natsUser' | 'natsPass' | 'natsToken' | 'natsNkey' | 'natsCreds' | 'natsTlsCa' | 'natsTlsCert' | 'natsTlsKey'>): NatsLoginOptions {
  const o: NatsLoginOptions = {};
  if (cfg.natsUser) o.user = cfg.natsUser;
  if (cfg.natsPass) o.pass = cfg.natsPass;
  if (cfg.natsToken) o.token = cfg.natsToken;
  if (cfg.natsNkey) o.nkeySeedFile = cfg.natsNkey;
  if (cfg.natsCreds) o.credsFile = cfg.natsCreds;
  const tls: NatsTlsOptions = {};
  if (cfg.natsTlsCa) tls.caFile = cfg.natsTlsCa;
  if (cfg.natsTlsCert) tls.certFile = cfg.natsTlsCert;
  if (cfg.natsTlsKey) tls.keyFile = cfg.natsTlsKey;
  if (Object.keys(tls).length > 0) o.tls = tls;
  return o;
}

/**
 * Connection options of an SDK caller: its options first; the login from the
 * environment only when the options and the URL give none, TLS files from the
 * environment only without `tls`.
 */
export function natsOptionsFromSdk(url: string, opts: NatsLoginOptions, env: NodeJS.ProcessEnv = process.env): ConnectSettings {
  const o: ConnectSettings = { url, hint: NatsHint.sdk };
  const given = [opts.user, opts.pass, opts.token, opts.nkeySeed, opts.nkeySeedFile, opts.credsFile].some((v) => v !== undefined) || hasUrlLogin(url);
  const e = (k: string): string | undefined => (env[k] ? env[k] : undefined);
  const login = given
    ? { user: opts.user, pass: opts.pass, token: opts.token, nkeySeed: opts.nkeySeed, nkeySeedFile: opts.nkeySeedFile, credsFile: opts.credsFile }
    : { user: e('LARS_NATS_USER'), pass: e('LARS_NATS_PASS'), token: e('LARS_NATS_TOKEN'), nkeySeed: undefined, nkeySeedFile: e('LARS_NATS_NKEY'), credsFile: e('LARS_NATS_CREDS') };
  if (login.user !== undefined) o.user = login.user;
  if (login.pass !== undefined) o.pass = login.pass;
  if (login.token !== undefined) o.token = login.token;
  if (login.nkeySeed !== undefined) o.nkeySeed = nkeySeedOf(login.nkeySeed, "createAgent's nkeySeed");
  if (login.nkeySeedFile !== undefined) o.nkeySeed = nkeySeedOf(readSecretFile('NKey seed', login.nkeySeedFile), `the NATS NKey seed file ${login.nkeySeedFile}`);
  if (login.credsFile !== undefined) o.creds = credsOf(readSecretFile('credentials', login.credsFile), login.credsFile);
  const t = opts.tls;
  const tls = t
    ? { ...tlsFromFiles({ ca: t.caFile, cert: t.certFile, key: t.keyFile }), ...(t.ca ? { ca: t.ca } : {}), ...(t.cert ? { cert: t.cert } : {}), ...(t.key ? { key: t.key } : {}) }
    : tlsFromFiles({ ca: e('LARS_NATS_TLS_CA'), cert: e('LARS_NATS_TLS_CERT'), key: e('LARS_NATS_TLS_KEY') });
  if (tls && Object.keys(tls).length > 0) o.tls = tls;
  return o;
}

/** The servers without credentials, and the login the connection uses: the options' own, else the URLs'. */
function loginOf(opts: ConnectOptions): { servers: string[]; login: NatsLogin; as: string } {
  const taken = splitNatsUrls(opts.url).map(takeUrlLogin);
  const servers = taken.map((t) => t.url);
  const ways = [
    opts.user !== undefined || opts.pass !== undefined ? 'a user and password' : undefined,
    opts.token !== undefined ? 'a token' : undefined,
    opts.nkeySeed !== undefined ? 'an NKey seed' : undefined,
    opts.creds !== undefined ? 'a credentials file' : undefined,
  ].filter((w): w is string => w !== undefined);
  const names = opts.hint === NatsHint.sdk ? 'user and pass, token, nkeySeed or nkeySeedFile, credsFile' : '--nats-user and --nats-pass, --nats-token, --nats-nkey, --nats-creds';
  if (ways.length > 1) throw new ConfigError(`NATS login: ${ways.join(' and ')} are both set; give one way to log in (${names})`);
  if (ways.length === 1) {
    const login: NatsLogin = {};
    if (opts.user !== undefined) login.user = opts.user;
    if (opts.pass !== undefined) login.pass = opts.pass;
    if (opts.token !== undefined) login.token = opts.token;
    if (opts.nkeySeed !== undefined) login.nkeySeed = opts.nkeySeed;
    if (opts.creds !== undefined) login.creds = opts.creds;
    return { servers, login, as: describeLogin(login) };
  }
  const fromUrls = taken.map((t) => t.login).filter((l): l is UrlLogin => l !== undefined);
  const first = fromUrls[0];
  if (first === undefined) return { servers, login: {}, as: 'with no credentials' };
  if (fromUrls.some((l) => JSON.stringify(l) !== JSON.stringify(first))) {
    throw new ConfigError(`the NATS URLs ${redactNatsUrl(opts.url)} carry different credentials; the client logs in one way to every server: give them the same, or give the login apart (${names})`);
  }
  const login: NatsLogin = 'token' in first ? { token: first.token } : { user: first.user, pass: first.pass };
  return { servers, login, as: describeLogin(login) };
}

/** How a login logs in, without its secrets, for a refused login's message. */
function describeLogin(l: NatsLogin): string {
  if (l.user !== undefined) return `as user ${JSON.stringify(l.user)}`;
  if (l.token !== undefined) return 'with a token';
  const seed = l.nkeySeed ?? (l.creds === undefined ? undefined : /\bSU[A-Z2-7]{50,}\b/.exec(l.creds)?.[0]);
  let pub: string | undefined;
  try {
    pub = seed === undefined ? undefined : nkeys.fromSeed(new TextEncoder().encode(seed)).getPublicKey();
  } catch {
    pub = undefined;
  }
  if (l.nkeySeed !== undefined) return `with the NKey ${pub ?? '(unreadable seed)'}`;
  if (l.creds !== undefined) return `with the credentials of ${pub ?? 'a user'}`;
  return 'with no credentials';
}

function clientLogin(l: NatsLogin): Partial<ConnectionOptions> {
  const te = new TextEncoder();
  if (l.creds !== undefined) return { authenticator: credsAuthenticator(te.encode(l.creds)) };
  if (l.nkeySeed !== undefined) return { authenticator: nkeyAuthenticator(te.encode(l.nkeySeed)) };
  if (l.token !== undefined) return { token: l.token };
  if (l.user !== undefined || l.pass !== undefined) return { user: l.user ?? '', pass: l.pass ?? '' };
  return {};
}

/** Every TCP client socket the process opens is announced here (a documented Node channel). */
const clientSockets = channel('net.client.socket');

/** Node's codes for a server certificate this client does not trust. */
const UNTRUSTED_SERVER = /^(SELF_SIGNED_CERT_IN_CHAIN|DEPTH_ZERO_SELF_SIGNED_CERT|UNABLE_TO_VERIFY_LEAF_SIGNATURE|UNABLE_TO_GET_ISSUER_CERT(_LOCALLY)?|CERT_HAS_EXPIRED|CERT_NOT_YET_VALID|ERR_TLS_CERT_ALTNAME_INVALID)$/;
/** TLS alerts of a server that wants a client certificate, or not this one. */
const CLIENT_CERT_REFUSED = /^ERR_SSL_(TLSV13_ALERT_CERTIFICATE_REQUIRED|SSLV3_ALERT_BAD_CERTIFICATE|TLSV1_ALERT_UNKNOWN_CA|SSLV3_ALERT_CERTIFICATE_UNKNOWN|SSLV3_ALERT_HANDSHAKE_FAILURE)$/;

/** What went wrong with a first connect, in words; whether something other than NATS answered; which side of TLS failed. */
function whyUnreachable(err: unknown, dialled: readonly Socket[], timeoutMs: number, tls: ConnectOptions['tls']): { why?: string; notNats?: boolean; tls?: 'server' | 'client' } {
  const e = err as { name?: string; message?: string; code?: string; cause?: { code?: string; message?: string } };
  const code = e.code ?? e.cause?.code;
  if (code !== undefined && UNTRUSTED_SERVER.test(code)) return { why: `TLS: the server's certificate is not trusted: ${e.cause?.message ?? e.message ?? code}`, tls: 'server' };
  const refusal = `it ${tls?.cert === undefined ? 'asks for a client certificate' : 'does not accept this client certificate'}`;
  if (code !== undefined && CLIENT_CERT_REFUSED.test(code)) return { why: `TLS: the server refused the connection: ${refusal}`, tls: 'client' };
  // Over TLS 1.3 a server refusing the client's certificate may also just reset the connection after the handshake.
  if (code === 'ECONNRESET' && tls !== undefined && dialled.some((s) => s.bytesRead > 0)) {
    return { why: `TLS: the server closed the connection after the handshake: ${refusal}`, tls: 'client' };
  }
  if (code === 'ECONNREFUSED') return { why: 'connection refused' };
  if (code === 'ENOTFOUND' || code === 'EAI_AGAIN') return { why: 'unknown host' };
  if (e.name === 'TimeoutError') {
    // Over TLS 1.3 a server that verifies clients refuses a certificate after the client's side of the
    // handshake is done: the client hears an alert it does not report, and waits out its timeout.
    if (tls !== undefined && dialled.some((s) => s.bytesRead > 0 && s.destroyed)) {
      return { why: `TLS: the server closed the connection after the handshake: ${refusal}`, tls: 'client' };
    }
    const silent = dialled.some((s) => s.bytesRead === 0 && s.remotePort !== undefined);
    if (silent) return { why: `something accepted the connection but sent no NATS greeting within ${timeoutMs / 1000} s`, notNats: true };
    return { why: `no answer within ${timeoutMs / 1000} s` };
  }
  if (/unexpected response/i.test(e.message ?? '')) return { why: 'something else answers there, not a NATS server', notNats: true };
  return e.message ? { why: e.message } : {};
}

export async function connectNats(opts: ConnectOptions): Promise<NatsConnection> {
  const { servers, login, as } = loginOf(opts);
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
      ...clientLogin(login),
      ...(opts.tls !== undefined ? { tls: opts.tls } : {}),
      ...opts.extra,
    });
  } catch (err) {
    if (err instanceof AuthorizationError) throw new NatsAuthError(opts.url, { cause: err, as, ...(opts.hint ? { hint: opts.hint } : {}) });
    const why = whyUnreachable(err, dialled, timeoutMs, opts.tls);
    // Only sockets still dialling or that never heard from one of these servers: another connection
    // opened at the same time to a server that answers has had its INFO by then.
    const ports = new Set(servers.map((s) => Number(/:(\d+)\/?$/.exec(s)?.[1] ?? 4222)));
    for (const s of dialled) if (!s.destroyed && (s.connecting || (s.bytesRead === 0 && ports.has(s.remotePort ?? -1)))) s.destroy();
    throw new NatsUnreachableError(opts.url, { cause: err, ...why, ...(opts.hint ? { hint: opts.hint } : {}) });
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
  const url = (server: string) => redactNatsUrl(/^[a-z]+:\/\//.test(server) ? server : `nats://${server}`);
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
