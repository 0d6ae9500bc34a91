/** Small typed errors with stable codes. Expected failures travel as data; these are for the rest. */
import { redactNatsUrl } from './nats-url.ts';

export const ErrorCode = {
  config: 'LARS_CONFIG',
  usage: 'LARS_USAGE',
  natsUnreachable: 'LARS_NATS_UNREACHABLE',
  /** The NATS server refused the connection's credentials. */
  natsAuth: 'LARS_NATS_AUTH',
  natsServerMissing: 'LARS_NATS_SERVER_MISSING',
  jetstreamDisabled: 'LARS_JETSTREAM_DISABLED',
  registry: 'LARS_REGISTRY',
  registryConflict: 'LARS_REGISTRY_CONFLICT',
  noRoute: 'LARS_NO_ROUTE',
  timeout: 'LARS_TIMEOUT',
  closed: 'LARS_CLOSED',
  clickhouse: 'LARS_CLICKHOUSE',
  /** The person at the terminal said no to a destructive command. */
  cancelled: 'LARS_CANCELLED',
  /**
   * Asked for without --force (console: without confirming): a drain or eject that would leave a route without a
   * healthy host or put it into panic, or `lars dev` on a NATS where it would take over route nodes or a route.
   */
  confirmationRequired: 'LARS_CONFIRMATION_REQUIRED',
  /** A port this process should listen on is taken by another process. */
  portInUse: 'LARS_PORT_IN_USE',
  /** A port could not be listened on for another reason (an address not of this machine, a privileged port). */
  listen: 'LARS_LISTEN',
  /** A call (`agent.call`) gave up: its error says why (budget, deadline, shedding, no host, ...) and lists every attempt. */
  callFailed: 'LARS_CALL_FAILED',
} as const;
export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];

export class LarsError extends Error {
  readonly code: ErrorCode;
  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'LarsError';
    this.code = code;
  }
}

export class ConfigError extends LarsError {
  constructor(message: string, options?: { cause?: unknown }) {
    super(ErrorCode.config, message, options);
    this.name = 'ConfigError';
  }
}

export class UsageError extends LarsError {
  constructor(message: string) {
    super(ErrorCode.usage, message);
    this.name = 'UsageError';
  }
}

/**
 * Who connects to NATS, so that an error names the settings to fix: the `lars`
 * command's flags and environment, or the SDK's options (createAgent).
 */
export const NatsHint = { cli: 'cli', sdk: 'sdk' } as const;
export type NatsHint = (typeof NatsHint)[keyof typeof NatsHint];

export class NatsUnreachableError extends LarsError {
  /**
   * `why`: what went wrong ("connection refused"), said after the URL; `notNats`: something else
   * answers there; `tls`: the server's certificate is not trusted, or the server wants another client
   * certificate. Either way the message ends with how to fix it. The URL is shown without its secrets.
   */
  constructor(url: string, options?: { cause?: unknown; why?: string; notNats?: boolean; tls?: 'server' | 'client'; hint?: NatsHint }) {
    const sdk = options?.hint === NatsHint.sdk;
    const setting = sdk ? "createAgent's servers (or LARS_NATS_URL)" : '--nats (LARS_NATS_URL)';
    const fix =
      options?.tls === 'server'
        ? `give ${sdk ? "createAgent's tls.caFile (or LARS_NATS_TLS_CA)" : '--nats-tls-ca (LARS_NATS_TLS_CA)'} the CA that signed the server's certificate, and connect by a name or address the certificate holds`
        : options?.tls === 'client'
          ? `give ${sdk ? "createAgent's tls.certFile and tls.keyFile (or LARS_NATS_TLS_CERT, LARS_NATS_TLS_KEY)" : '--nats-tls-cert and --nats-tls-key (LARS_NATS_TLS_CERT, LARS_NATS_TLS_KEY)'} a client certificate signed by a CA the server trusts`
          : options?.notNats
            ? `give ${setting} the client port of a NATS server (4222 by default)`
            : `start nats-server -js there, or give ${setting} a running one`;
    super(ErrorCode.natsUnreachable, `cannot reach NATS at ${redactNatsUrl(url)}${options?.why ? ` (${options.why})` : ''}: ${fix}`, options);
    this.name = 'NatsUnreachableError';
  }
}

/** The NATS server has no JetStream (started without -js), which every stream and KV bucket needs. */
export class JetStreamDisabledError extends LarsError {
  constructor(url: string, options?: { cause?: unknown }) {
    super(ErrorCode.jetstreamDisabled, `JetStream is not enabled on ${redactNatsUrl(url)}: start nats-server with -js`, options);
    this.name = 'JetStreamDisabledError';
  }

  /** Whether a NATS client error says the server has no JetStream. */
  static matches(err: unknown): boolean {
    return /jetstream.*not enabled/i.test((err as Error)?.message ?? '');
  }
}

export class NatsAuthError extends LarsError {
  /**
   * `as`: how the connection logged in, without secrets ("as user admin", "with a token"); `hint`: who
   * connects, to name the settings to fix. The URL is shown without its secrets.
   */
  constructor(url: string, options?: { cause?: unknown; as?: string; hint?: NatsHint }) {
    const fix =
      options?.hint === NatsHint.sdk
        ? 'give createAgent the login of a user the server knows: user and pass, token, nkeySeedFile or credsFile (or LARS_NATS_USER and LARS_NATS_PASS, LARS_NATS_TOKEN, LARS_NATS_NKEY or LARS_NATS_CREDS in the environment)'
        : 'give the login of a user the server knows: --nats-user and --nats-pass, --nats-token, --nats-nkey or --nats-creds (LARS_NATS_USER and LARS_NATS_PASS, LARS_NATS_TOKEN, LARS_NATS_NKEY, LARS_NATS_CREDS)';
    super(ErrorCode.natsAuth, `NATS at ${redactNatsUrl(url)} refused the credentials (authorization violation${options?.as ? `; ${options.as}` : ''}): ${fix}`, options);
    this.name = 'NatsAuthError';
  }
}

/** A server of this process could not listen: `code` says whether the port is taken (`LARS_PORT_IN_USE`) or why else. */
export class ListenError extends LarsError {
  readonly port: number;
  readonly host: string;
  constructor(code: typeof ErrorCode.portInUse | typeof ErrorCode.listen, message: string, where: { port: number; host: string }, options?: { cause?: unknown }) {
    super(code, message, options);
    this.name = 'ListenError';
    this.port = where.port;
    this.host = where.host;
  }
}

/** An operator's action refused until confirmed: `consequence` says what it would do (one phrase, without the remedy). */
export class ConfirmationRequiredError extends LarsError {
  readonly consequence: string;
  constructor(message: string, consequence: string) {
    super(ErrorCode.confirmationRequired, message);
    this.name = 'ConfirmationRequiredError';
    this.consequence = consequence;
  }
}

export class RegistryError extends LarsError {
  constructor(message: string, options?: { cause?: unknown }) {
    super(ErrorCode.registry, message, options);
    this.name = 'RegistryError';
  }
}

export class ClosedError extends LarsError {
  constructor(what: string) {
    super(ErrorCode.closed, `${what} is closed`);
    this.name = 'ClosedError';
  }
}
