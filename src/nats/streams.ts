/**
 * The JetStream streams that make reports and route events durable: the
 * reports stream captures `<prefix>.report.>`, the events stream
 * `<prefix>.event.>`. Publishers keep using plain core publishes; the server
 * stores what matches.
 *
 * `ensureStreams` is called by every route node and every sink at start, so it
 * is idempotent and safe to race: it creates a missing stream, and when a
 * stream exists it leaves its limits alone (an operator may have tuned them),
 * only adds missing subjects and brings its replica count to the one asked for.
 *
 * Replicas: `auto` (the default) is 3 when the server we are connected to is
 * part of a cluster (its INFO names the cluster; nats-server 2.9 sends
 * `cluster` only then) and 1 on a single server.
 */
import { JetStreamApiCodes, JetStreamApiError, jetstreamManager, type JetStreamManager, type StreamConfig, type StreamInfo } from '@nats-io/jetstream';
import { nanos, type NatsConnection, type ServerInfo } from '@nats-io/transport-node';
import type { Names } from '../../schemas/subjects.ts';
import { LIMITS } from '../../schemas/messages.ts';
import { silentLogger, type Logger } from '../lib/log.ts';
import { retry } from '../lib/retry.ts';
import { ConfigError } from '../lib/errors.ts';
import { errText } from '../lib/ratelog.ts';

/** A replica count, or `auto`: 3 on a cluster, 1 on a single server. */
export type Replicas = number | 'auto';

/** Replicas used by `auto` on a cluster. */
export const CLUSTER_REPLICAS = 3;

/**
 * The replica count for `want` on the server described by `info` (the
 * connection's server INFO): a number is taken as it is (at least 1), `auto`
 * is 3 when the server belongs to a cluster and 1 otherwise.
 */
export function chooseReplicas(want: Replicas | undefined, info: Pick<ServerInfo, 'cluster'> | undefined): number {
  if (want === undefined || want === 'auto') want = processReplicas;
  if (typeof want === 'number') {
    if (!Number.isInteger(want) || want < 1 || want > 5) throw new ConfigError(`replicas must be an integer from 1 to 5 or 'auto', not ${want}`);
    return want;
  }
  return info?.cluster ? CLUSTER_REPLICAS : 1;
}

let processReplicas: Replicas = 'auto';

/**
 * The process' replica setting (the `replicas` config of a lars command):
 * a number here overrides `auto` everywhere in the process; `auto` restores
 * the automatic choice.
 */
export function setProcessReplicas(r: Replicas): void {
  if (typeof r === 'number') chooseReplicas(r, undefined);
  processReplicas = r;
}

/** The replica count for `want` on the server `nc` is connected to. */
export function replicasFor(nc: NatsConnection, want: Replicas | undefined): number {
  return chooseReplicas(want, nc.info);
}

export interface StreamLimits {
  /** Oldest message kept, ms. */
  maxAgeMs: number;
  /** Stream size cap, bytes; the oldest messages go first (publishers are never refused). */
  maxBytes: number;
  /** Window in which a repeated `Nats-Msg-Id` is dropped, ms. */
  duplicateWindowMs: number;
  replicas: Replicas;
}

/**
 * Reports are a buffer in front of ClickHouse: three days rides out a
 * weekend outage of the sink. Events are few and the audit trail: a month.
 */
export const DEFAULT_REPORT_STREAM_LIMITS: StreamLimits = {
  maxAgeMs: 3 * 86_400_000,
  maxBytes: 8 * 2 ** 30,
  duplicateWindowMs: 120_000,
  replicas: 'auto',
};

export const DEFAULT_EVENT_STREAM_LIMITS: StreamLimits = {
  maxAgeMs: 30 * 86_400_000,
  maxBytes: 2 ** 30,
  duplicateWindowMs: 120_000,
  replicas: 'auto',
};

export interface EnsureStreamsOptions {
  reports?: Partial<StreamLimits>;
  events?: Partial<StreamLimits>;
  /** Replicas of both streams (overrides `reports.replicas` and `events.replicas`); default `auto`. */
  replicas?: Replicas;
  /** An existing manager (saves one round trip). */
  jsm?: JetStreamManager;
  log?: Logger;
}

export interface EnsuredStreams {
  reports: StreamInfo;
  events: StreamInfo;
}

/** JetStream API error codes this module reacts to, beyond the client's JetStreamApiCodes. */
const STREAM_NAME_IN_USE = 10058;
/** Also what a concurrent creator of the same stream can cause on 2.9: treated like "name in use". */
const SUBJECTS_OVERLAP = 10065;
const INSUFFICIENT_STORAGE = 10047;
/** "no suitable peers for placement": a cluster still forming (its servers not all known to the meta leader yet). */
const NO_SUITABLE_PEERS = 10005;
/** How long a create waits for a forming cluster to place its replicas. */
export const PLACEMENT_WAIT_MS = 20_000;

/**
 * A retry condition for creates on a cluster that may still be forming: true
 * for "no suitable peers" until `PLACEMENT_WAIT_MS` after the first one.
 */
export function placementPending(): (err: unknown) => boolean {
  let first: number | undefined;
  return (err) => {
    if (apiCode(err) !== NO_SUITABLE_PEERS) return false;
    first ??= Date.now();
    return Date.now() - first < PLACEMENT_WAIT_MS;
  };
}
/** Smallest max_bytes ensureStream falls back to when the server cannot reserve more. */
const MIN_STREAM_BYTES = 64 * 2 ** 20;

/** The stream's config; `replicas` must be resolved (a number) by then, `auto` counts as 1. */
export function streamConfig(name: string, subject: string, limits: StreamLimits): Partial<StreamConfig> & { name: string } {
  return {
    name,
    subjects: [subject],
    retention: 'limits',
    storage: 'file',
    discard: 'old',
    max_age: nanos(limits.maxAgeMs),
    max_bytes: limits.maxBytes,
    max_msg_size: LIMITS.maxMessageBytes,
    max_msgs: -1,
    max_consumers: -1,
    duplicate_window: nanos(limits.duplicateWindowMs),
    num_replicas: limits.replicas === 'auto' ? 1 : limits.replicas,
  } as Partial<StreamConfig> & { name: string };
}

export async function ensureStreams(nc: NatsConnection, n: Names, opts: EnsureStreamsOptions = {}): Promise<EnsuredStreams> {
  const jsm = opts.jsm ?? (await jetstreamManager(nc));
  const log = (opts.log ?? silentLogger()).child({ mod: 'streams' });
  const limits = (defaults: StreamLimits, o: Partial<StreamLimits> | undefined): StreamLimits => {
    const l = { ...defaults, ...o };
    return { ...l, replicas: replicasFor(nc, opts.replicas ?? l.replicas) };
  };
  const [reports, events] = await Promise.all([
    ensureStream(jsm, streamConfig(n.reportsStream, n.reportAll, limits(DEFAULT_REPORT_STREAM_LIMITS, opts.reports)), log),
    ensureStream(jsm, streamConfig(n.eventsStream, n.eventAll, limits(DEFAULT_EVENT_STREAM_LIMITS, opts.events)), log),
  ]);
  return { reports, events };
}

function apiCode(err: unknown): number | undefined {
  return err instanceof JetStreamApiError ? err.code : undefined;
}

/** Creates the stream, or adopts the existing one (adding our subject if it lacks it, and setting its replicas). */
export async function ensureStream(jsm: JetStreamManager, cfg: Partial<StreamConfig> & { name: string }, log: Logger = silentLogger()): Promise<StreamInfo> {
  let want = cfg;
  let raced = 0;
  const placing = placementPending();
  return retry(
    async () => {
      const existing = await infoOrUndefined(jsm, want.name);
      if (existing) return adopt(jsm, existing, want, log);
      return jsm.streams.add(want);
    },
    {
      attempts: 120,
      minMs: 20,
      maxMs: 250,
      randomize: true,
      retryIf: (err) => {
        const code = apiCode(err);
        if (placing(err)) return true;
        // Another process created it between our info and add (with other limits): adopt theirs.
        // On 2.9 the loser of a concurrent create of the same stream may hear "subjects overlap" instead.
        if ((code === STREAM_NAME_IN_USE || code === SUBJECTS_OVERLAP) && raced++ < 5) return true;
        // The server reserves max_bytes up front; on a small disk take what it can give.
        const bytes = want.max_bytes ?? -1;
        if (code === INSUFFICIENT_STORAGE && bytes > MIN_STREAM_BYTES) {
          want = { ...want, max_bytes: Math.max(MIN_STREAM_BYTES, Math.floor(bytes / 2)) };
          return true;
        }
        return false;
      },
    },
  );
}

/** The stream's info, or undefined when there is no such stream. */
export async function infoOrUndefined(jsm: JetStreamManager, name: string): Promise<StreamInfo | undefined> {
  try {
    return await jsm.streams.info(name);
  } catch (err) {
    if (apiCode(err) === JetStreamApiCodes.StreamNotFound) return undefined;
    throw err;
  }
}

async function adopt(jsm: JetStreamManager, info: StreamInfo, cfg: Partial<StreamConfig>, log: Logger): Promise<StreamInfo> {
  const want = cfg.subjects ?? [];
  const have = info.config.subjects ?? [];
  const missing = want.filter((s) => !have.includes(s));
  if (missing.length > 0) info = await jsm.streams.update(info.config.name, { subjects: [...have, ...missing] });
  if (cfg.num_replicas !== undefined) info = await setReplicas(jsm, info, cfg.num_replicas, log);
  return info;
}

/**
 * Brings an existing stream (a KV bucket's too) to `replicas`. The server
 * moves the data; when it cannot (fewer servers than replicas, a server
 * that is not clustered) the stream is used as it is and the refusal logged.
 */
export async function setReplicas(jsm: JetStreamManager, info: StreamInfo, replicas: number, log: Logger): Promise<StreamInfo> {
  const name = info.config.name;
  const from = info.config.num_replicas;
  if (from === replicas) return info;
  try {
    const updated = await jsm.streams.update(name, { num_replicas: replicas });
    log.info({ stream: name, from, to: replicas }, 'stream replica count changed');
    return updated;
  } catch (err) {
    log.warn({ err: errText(err), stream: name, from, to: replicas }, 'could not change the stream replica count; using it as it is');
    return info;
  }
}
