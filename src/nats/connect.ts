/** Opens NATS connections with the project's defaults and one clear error when the server is away. */
import { connect, type NatsConnection, type ConnectionOptions } from '@nats-io/transport-node';
import { NatsUnreachableError } from '../errors.ts';

export type { NatsConnection };

export interface ConnectOptions {
  url: string;
  name?: string;
  /** Keep reconnecting forever (long-running components); default true. */
  reconnect?: boolean;
  /** First-connect timeout, ms. */
  timeoutMs?: number;
  extra?: Partial<ConnectionOptions>;
}

export async function connectNats(opts: ConnectOptions): Promise<NatsConnection> {
  const servers = opts.url.split(',').map((s) => s.trim()).filter((s) => s.length > 0);
  try {
    return await connect({
      servers,
      name: opts.name,
      timeout: opts.timeoutMs ?? 3000,
      reconnect: opts.reconnect ?? true,
      maxReconnectAttempts: opts.reconnect === false ? 0 : -1,
      reconnectTimeWait: 250,
      reconnectJitter: 100,
      pingInterval: 10_000,
      ...opts.extra,
    });
  } catch (err) {
    throw new NatsUnreachableError(opts.url, { cause: err });
  }
}
