/**
 * The durable pull consumer a pipeline reads: made when missing (by the
 * first worker, or again after someone deleted it), its ack wait and
 * max_ack_pending kept in line with the worker's options, and bound.
 */
import {
  AckPolicy,
  DeliverPolicy,
  JetStreamApiCodes,
  JetStreamApiError,
  type Consumer,
  type JetStreamClient,
  type JetStreamManager,
} from '@nats-io/jetstream';
import { nanos } from '@nats-io/transport-node';
import type { Logger } from '../lib/log.ts';
import type { AnalyticsEngine } from './engine.ts';
import { storedHighWater } from './dedup.ts';
import type { PipelineName } from './types.ts';

export function durableName(prefix: string, p: PipelineName): string {
  return `${prefix}_${p}`;
}

export interface Binding {
  consumer: Consumer;
  /** Messages up to this stream sequence may be stored already (a new consumer replaying the stream, or a consumer whose position fell back). */
  highWater: number;
  /** This bind made the durable consumer (it did not exist). */
  created: boolean;
}

export interface DurableConsumerOptions {
  jsm: JetStreamManager;
  js: JetStreamClient;
  engine: AnalyticsEngine;
  stream: string;
  durable: string;
  /** Raw table the stream's rows are stored in (for the replay high-water mark). */
  table: string;
  ackWaitMs: number;
  maxAckPending: number;
  log: Logger;
}

export function isApiError(err: unknown, code: number): boolean {
  return err instanceof JetStreamApiError && err.code === code;
}

/** True when the error says the consumer or its stream is gone (re-create, do not just retry). */
export function isConsumerGone(err: unknown): boolean {
  return isApiError(err, JetStreamApiCodes.ConsumerNotFound) || isApiError(err, JetStreamApiCodes.StreamNotFound);
}

export class DurableConsumer {
  private readonly o: DurableConsumerOptions;

  constructor(o: DurableConsumerOptions) {
    this.o = o;
  }

  get stream(): string {
    return this.o.stream;
  }

  /** Makes sure the durable consumer exists and binds to it. */
  async bind(): Promise<Binding> {
    const { jsm, js, engine, stream, durable, table, log } = this.o;
    const created = await this.ensure();
    // Also for a consumer that existed: after a server crash its acknowledged
    // position can fall back (acks not yet on disk), and what comes again
    // arrives as a first delivery. Messages up to what is stored are looked up.
    const highWater = await storedHighWater(jsm, stream, engine, table);
    if (created && highWater > 0) log.warn({ stream, durable, highWater }, 'new sink consumer on a stream already stored in part: replayed messages are looked up first');
    return { consumer: await js.consumers.get(stream, durable), highWater, created };
  }

  /** The highest stream sequence stored in the pipeline's table (what a consumer whose position fell back may deliver again). */
  storedHighWater(): Promise<number> {
    const { jsm, engine, stream, table } = this.o;
    return storedHighWater(jsm, stream, engine, table);
  }

  /** True when this call created the consumer (it starts at the stream's first message). */
  private async ensure(): Promise<boolean> {
    const { jsm, stream, durable, maxAckPending, log } = this.o;
    const ack_wait = nanos(this.o.ackWaitMs);
    let existed = true;
    try {
      await jsm.consumers.info(stream, durable);
    } catch (err) {
      if (!isApiError(err, JetStreamApiCodes.ConsumerNotFound)) throw err;
      existed = false;
    }
    if (!existed) {
      try {
        await jsm.consumers.add(stream, {
          durable_name: durable,
          ack_policy: AckPolicy.Explicit,
          deliver_policy: DeliverPolicy.All,
          ack_wait,
          max_ack_pending: maxAckPending,
          max_deliver: -1,
        });
        return true;
      } catch (err) {
        // Another worker created it first, perhaps with other options: use theirs.
        if (!(err instanceof JetStreamApiError)) throw err;
      }
    }
    try {
      // Bring the tunables in line with this worker's options.
      const info = await jsm.consumers.info(stream, durable);
      if (info.config.ack_wait !== ack_wait || info.config.max_ack_pending !== maxAckPending) {
        await jsm.consumers.update(stream, durable, { ack_wait, max_ack_pending: maxAckPending });
        log.info({ stream, durable, ackWaitMs: this.o.ackWaitMs, maxAckPending }, 'sink consumer tunables updated');
      }
    } catch (e) {
      log.warn({ err: e, stream, durable }, 'could not update the sink consumer; using it as it is');
    }
    return false;
  }
}
