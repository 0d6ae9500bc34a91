/**
 * The NATS connection as metrics and as a readiness input: connected or not
 * (from the client's status events), reconnects, and the client's own
 * message and byte counts.
 */
import type { NatsConnection } from '@nats-io/transport-node';
import type { Registry } from 'prom-client';
import { counterFrom, gaugeFrom } from './collect.ts';

export interface ConnectionState {
  /** True while the client holds a connection to a server. */
  connected(): boolean;
  reconnects(): number;
  stop(): void;
}

/** Follows a connection's status events; starts as connected (the connection was just opened). */
export function trackConnection(nc: NatsConnection): ConnectionState {
  let connected = !nc.isClosed();
  let reconnects = 0;
  let stopped = false;
  const iter = nc.status()[Symbol.asyncIterator]();
  void nc.closed().then(() => {
    connected = false;
  });
  void (async () => {
    for (;;) {
      const r = await iter.next();
      if (stopped || r.done) return;
      const s = r.value;
      if (s.type === 'disconnect' || s.type === 'close') connected = false;
      else if (s.type === 'reconnect') {
        connected = true;
        reconnects++;
      }
    }
  })().catch(() => {
    connected = false;
  });
  return {
    connected: () => connected && !nc.isClosed(),
    reconnects: () => reconnects,
    stop() {
      stopped = true;
      void iter.return?.();
    },
  };
}

/** `lars_nats_*` metrics of one connection. */
export function registerConnectionMetrics(registry: Registry, nc: NatsConnection, state: ConnectionState): void {
  gaugeFrom(registry, { name: 'lars_nats_connected', help: '1 while connected to a NATS server, else 0', read: () => (state.connected() ? 1 : 0) });
  counterFrom(registry, { name: 'lars_nats_reconnects_total', help: 'Reconnections to a NATS server since start', read: () => state.reconnects() });
  counterFrom<'direction'>(registry, {
    name: 'lars_nats_messages_total',
    help: 'Messages through the NATS connection, by direction (in, out)',
    labelNames: ['direction'],
    read: () => {
      const s = nc.stats();
      return [
        [{ direction: 'in' }, s.inMsgs],
        [{ direction: 'out' }, s.outMsgs],
      ];
    },
  });
  counterFrom<'direction'>(registry, {
    name: 'lars_nats_bytes_total',
    help: 'Payload bytes through the NATS connection, by direction (in, out)',
    labelNames: ['direction'],
    read: () => {
      const s = nc.stats();
      return [
        [{ direction: 'in' }, s.inBytes],
        [{ direction: 'out' }, s.outBytes],
      ];
    },
  });
}
