/**
 * The JetStream streams that make reports and route events durable: the
 * reports stream captures `<prefix>.report.>`, the events stream
 * `<prefix>.event.>`. Publishers keep using plain core publishes; the server
 * stores what matches.
 *
 * `ensureStreams` is called by every route node and every sink at start, so it
 * is idempotent and safe to race: it creates a missing stream, and when a
 * stream exists it leaves its limits alone (an operator may have tuned them)
 * and only adds missing subjects.
 */
import { JetStreamApiError, jetstreamManager, type JetStreamManager, type StreamConfig, type StreamInfo } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import type { Names } from '../schemas/subjects.ts';
import { LIMITS } from '../schemas/messages.ts';

export interface StreamLimits {
  /** Oldest message kept, ms. */
  maxAgeMs: number;
  /** Stream size cap, bytes; the oldest messages go first (publishers are never refused). */
  maxBytes: number;
  /** Window in which a repeated `Nats-Msg-Id` is dropped, ms. */
  duplicateWindowMs: number;
  replicas: number;
}

/**
 * Reports are a buffer in front of ClickHouse: three days rides out a
 * weekend outage of the sink. Events are few and the audit trail: a month.
 */
export const DEFAULT_REPORT_STREAM_LIMITS: StreamLimits = {
  maxAgeMs: 3 * 86_400_000,
  maxBytes: 8 * 2 ** 30,
  duplicateWindowMs: 120_000,
  replicas: 1,
};

export const DEFAULT_EVENT_STREAM_LIMITS: StreamLimits = {
  maxAgeMs: 30 * 86_400_000,
  maxBytes: 2 ** 30,
  duplicateWindowMs: 120_000,
  replicas: 1,
};

export interface EnsureStreamsOptions {
  reports?: Partial<StreamLimits>;
  events?: Partial<StreamLimits>;
  /** An existing manager (saves one round trip). */
  jsm?: JetStreamManager;
}

export interface EnsuredStreams {
  reports: StreamInfo;
  events: StreamInfo;
}

const NS_PER_MS = 1_000_000;

/** JetStream API error codes this module reacts to. */
const STREAM_NOT_FOUND = 10059;
const STREAM_NAME_IN_USE = 10058;
/** Also what a concurrent creator of the same stream can cause on 2.9: treated like "name in use". */
const SUBJECTS_OVERLAP = 10065;
const INSUFFICIENT_STORAGE = 10047;
/** Smallest max_bytes ensureStream falls back to when the server cannot reserve more. */
const MIN_STREAM_BYTES = 64 * 2 ** 20;

export function streamConfig(name: string, subject: string, limits: StreamLimits): Partial<StreamConfig> & { name: string } {
  return {
    name,
    subjects: [subject],
    retention: 'limits',
    storage: 'file',
    discard: 'old',
    max_age: limits.maxAgeMs * NS_PER_MS,
    max_bytes: limits.maxBytes,
    max_msg_size: LIMITS.maxMessageBytes,
    max_msgs: -1,
    max_consumers: -1,
    duplicate_window: limits.duplicateWindowMs * NS_PER_MS,
    num_replicas: limits.replicas,
  } as Partial<StreamConfig> & { name: string };
}

export async function ensureStreams(nc: NatsConnection, n: Names, opts: EnsureStreamsOptions = {}): Promise<EnsuredStreams> {
  const jsm = opts.jsm ?? (await jetstreamManager(nc));
  const [reports, events] = await Promise.all([
    ensureStream(jsm, streamConfig(n.reportsStream, n.reportAll, { ...DEFAULT_REPORT_STREAM_LIMITS, ...opts.reports })),
    ensureStream(jsm, streamConfig(n.eventsStream, n.eventAll, { ...DEFAULT_EVENT_STREAM_LIMITS, ...opts.events })),
  ]);
  return { reports, events };
}

function apiCode(err: unknown): number | undefined {
  return err instanceof JetStreamApiError ? err.code : undefined;
}

/** Creates the stream, or adopts the existing one (adding our subject if it lacks it). */
export async function ensureStream(jsm: JetStreamManager, cfg: Partial<StreamConfig> & { name: string }): Promise<StreamInfo> {
  let want = cfg;
  for (let attempt = 0; ; attempt++) {
    const existing = await infoOrUndefined(jsm, want.name);
    if (existing) return adopt(jsm, existing, want);
    try {
      return await jsm.streams.add(want);
    } catch (err) {
      const code = apiCode(err);
      // Another process created it between our info and add (with other limits): adopt theirs.
      // On 2.9 the loser of a concurrent create of the same stream may hear "subjects overlap" instead.
      if ((code === STREAM_NAME_IN_USE || code === SUBJECTS_OVERLAP) && attempt < 5) {
        await new Promise((r) => setTimeout(r, 20 * (attempt + 1)));
        continue;
      }
      // The server reserves max_bytes up front; on a small disk take what it can give.
      const bytes = want.max_bytes ?? -1;
      if (code === INSUFFICIENT_STORAGE && bytes > MIN_STREAM_BYTES) {
        want = { ...want, max_bytes: Math.max(MIN_STREAM_BYTES, Math.floor(bytes / 2)) };
        continue;
      }
      throw err;
    }
  }
}

async function infoOrUndefined(jsm: JetStreamManager, name: string): Promise<StreamInfo | undefined> {
  try {
    return await jsm.streams.info(name);
  } catch (err) {
    if (apiCode(err) === STREAM_NOT_FOUND) return undefined;
    throw err;
  }
}

async function adopt(jsm: JetStreamManager, info: StreamInfo, cfg: Partial<StreamConfig>): Promise<StreamInfo> {
  const want = cfg.subjects ?? [];
  const have = info.config.subjects ?? [];
  const missing = want.filter((s) => !have.includes(s));
  if (missing.length === 0) return info;
  return jsm.streams.update(info.config.name, { subjects: [...have, ...missing] });
}
