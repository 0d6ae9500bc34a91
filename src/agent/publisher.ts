/**
 * The publish of one report batch to JetStream, and what its failures mean:
 * the outbox (./outbox.ts) retries whatever fails, and tells the operator
 * once per kind of failure, at a rate limit, what is wrong.
 */
import { ClosedConnectionError, DrainingConnectionError, NoRespondersError, TimeoutError, type NatsConnection } from '@nats-io/transport-node';
import { jetstream, JetStreamApiError } from '@nats-io/jetstream';
import type { RateLimitedLog } from '../lib/ratelog.ts';

/** Why a publish was not acknowledged. */
export const PublishFailure = {
  /** Nothing answers on the subject: no stream captures it (or JetStream is off). */
  noStream: 'no_stream',
  /** No ack in time: server away, restarting, or the only listener a core subscriber. */
  timeout: 'timeout',
  /** The stream refused the message (a JetStream API error). */
  refused: 'refused',
  /** The connection is closed for good. */
  closed: 'closed',
  other: 'other',
} as const;
export type PublishFailure = (typeof PublishFailure)[keyof typeof PublishFailure];

function inChain(err: unknown, test: (e: unknown) => boolean): boolean {
  for (let e = err, i = 0; e !== undefined && e !== null && i < 5; e = (e as { cause?: unknown }).cause, i++) if (test(e)) return true;
  return false;
}

export function classifyPublishError(err: unknown): PublishFailure {
  if (inChain(err, (e) => e instanceof NoRespondersError)) return PublishFailure.noStream;
  if (inChain(err, (e) => e instanceof TimeoutError)) return PublishFailure.timeout;
  if (inChain(err, (e) => e instanceof ClosedConnectionError || e instanceof DrainingConnectionError)) return PublishFailure.closed;
  if (err instanceof JetStreamApiError) return PublishFailure.refused;
  return PublishFailure.other;
}

/** Publishes one batch; resolves on the stream's ack, rejects otherwise. */
export type PublishFn = (subject: string, data: Uint8Array, msgId: string) => Promise<void>;

/** A PublishFn over JetStream publish (ack awaited, at most `ackTimeoutMs`). */
export function jetStreamPublisher(nc: NatsConnection, ackTimeoutMs: number): PublishFn {
  const js = jetstream(nc, { timeout: ackTimeoutMs });
  return async (subject, data, msgId) => {
    await js.publish(subject, data, { msgID: msgId, timeout: ackTimeoutMs });
  };
}

/** What the outbox holds when a publish fails, for the log line. */
export type FailureContext = { subject: string; pendingReports: number; pendingBatches: number };

/** Logs a failed publish of `kind` (at most one line per kind per the log's interval); `noStreamHint` says what to start. */
export function logPublishFailure(rateLog: RateLimitedLog, kind: PublishFailure, ctx: FailureContext, err: unknown, noStreamHint: string): void {
  switch (kind) {
    case PublishFailure.noStream:
      rateLog.emit('error', kind, ctx, `no JetStream stream captures ${ctx.subject}: report batches are held and retried; ${noStreamHint}`);
      break;
    case PublishFailure.timeout:
      rateLog.emit('warn', kind, ctx, 'report batch not acknowledged in time (server away or restarting, or no stream captures the subject); retrying');
      break;
    case PublishFailure.closed:
      rateLog.emit('error', kind, ctx, 'the connection is closed; report batches can no longer be sent');
      break;
    default:
      rateLog.emit('warn', kind, { ...ctx, err }, 'report batch publish failed; retrying');
  }
}
