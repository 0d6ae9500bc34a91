/**
 * The agent's options, and their resolution in one place: every default and
 * every check of `createAgent`'s options (a bad one is a RangeError naming it).
 */
import { randomBytes } from 'node:crypto';
import type { NatsConnection } from '@nats-io/transport-node';
import { DEFAULT_PARTITIONS } from '../../schemas/subjects.ts';
import { ReportSide } from '../../schemas/messages.ts';
import { DEFAULT_MAX_TRIALS, FEEDBACK_DEFAULTS, type FeedbackOptions } from '../../actors/strategies/feedback.ts';
import { ZONE_MIN_HEALTHY_PERCENT } from '../../actors/strategies/zone.ts';
import type { Random, StrategyName } from '../../actors/strategies/types.ts';
import type { NatsLoginOptions } from '../nats/connect.ts';
import type { Logger } from '../lib/log.ts';
import { BATCH_DEFAULTS } from './report-batcher.ts';
import { FOLLOWER_DEFAULTS } from './route-follower.ts';
import { OUTBOX_DEFAULTS } from './outbox.ts';
import type { PublishFn } from './publisher.ts';
import type { CallTimers } from './call.ts';

export const ReportDelivery = {
  /** JetStream publishes, acknowledged, kept in the outbox and retried until acknowledged. */
  acked: 'acked',
  /** Plain core publishes (captured by the stream, never acknowledged): what a server restart eats is lost. */
  core: 'core',
} as const;
export type ReportDelivery = (typeof ReportDelivery)[keyof typeof ReportDelivery];

/**
 * The agent's options. Without `nc`, the agent connects to `servers` (default
 * LARS_NATS_URL, else nats://127.0.0.1:4222) and logs in with the login and
 * TLS options of NatsLoginOptions (user/pass, token, nkeySeed/nkeySeedFile,
 * credsFile, tls), each taken from the LARS_NATS_* environment when not given.
 */
export interface AgentOptions extends NatsLoginOptions {
  /** An open connection (the agent will not close it; the login options are then unused), or... */
  nc?: NatsConnection;
  /** ...URL(s) to connect to, comma separated, credentials allowed (the agent owns and closes that connection). */
  servers?: string;
  prefix?: string;
  partitions?: number;
  /** Sender id on every report batch; default a random id. */
  agentId?: string;
  /** The caller's zone: stamped on reports, and picks prefer hosts of this zone (see zoneAware). */
  zone?: string;
  /** `server`: this agent reports what its own host served (a server-side reporter); its batches say so. Default `client`. */
  side?: ReportSide;
  /** With `zone` set, prefer hosts of that zone and spill to others as it weakens (default true). */
  zoneAware?: boolean;
  /** Local healthy share, percent, under which picks spill to other zones in proportion (default 70). */
  zoneMinHealthyPercent?: number;
  /**
   * Pick strategy for every route, overriding the one a route names. Without
   * it: the route's strategy (its registry entry's; `lars` for a lars-profile
   * route), else power of two choices over peak-EWMA latency (p2c_ewma).
   */
  strategy?: StrategyName;
  /** The callers' timeout, ms: a failed call counts as at least this slow in the latency estimate (default 1000). */
  timeoutMs?: number;
  /** Trial calls a probing host may have in flight at once from this agent (default 1). */
  probeTrials?: number;
  /** A batch is sent when it holds this many reports (default 1000, at most 10000)... */
  batchMaxReports?: number;
  /** ...or when its oldest report is this old, ms (default 20). */
  batchMaxDelayMs?: number;
  /** How long `getHost` waits for a route on its first use, ms (default 2000). */
  loadTimeoutMs?: number;
  /** Reports buffered or unacknowledged at most (default 100000); beyond it the oldest are dropped and counted. */
  maxPendingReports?: number;
  /** 'acked' (default): JetStream publishes kept until acknowledged; 'core': plain publishes, as before acks. */
  reportDelivery?: ReportDelivery;
  /** Acknowledged publishes outstanding at once (default 64). */
  publishWindow?: number;
  /**
   * How long a publish waits for its ack before the client gives up on it, ms (default 5000). A lost
   * publish is retried long before that: see retryIntervalMs.
   */
  ackTimeoutMs?: number;
  /**
   * No ack for this long while publishes are out, or a failed publish, is a stall (a stream leader lost,
   * a server away): the oldest batch is published again now and at this interval until an ack comes,
   * which brings back every publish sent before it that is still unanswered, ms (default 250).
   */
  retryIntervalMs?: number;
  /** A stall longer than 20 s since the last ack retries after these pauses instead, ms, by retry (default [500, 1000, 2000, 5000]). */
  retryBackoffMs?: number[];
  /**
   * This long after a stall ended, the batches acknowledged around it are published once more (same msg
   * ids: a stream that has them stores nothing) to confirm them, ms; 0: never (default 5000).
   */
  confirmDelayMs?: number;
  /** How long `flush()` waits for acks when not told, ms (default 30000). */
  flushTimeoutMs?: number;
  /** How long `close()` waits for acks before dropping what is left, ms (default 5000). */
  closeTimeoutMs?: number;
  /** Keep the last route state with pickable hosts against an update that leaves none without a reason (default true). */
  holdEmptyUpdates?: boolean;
  log?: Logger;
  random?: Random;
  /** Injected clock, ms. */
  clock?: () => number;
  /** Replaces the JetStream publish of a batch (tests). */
  publish?: PublishFn;
  /** Timers of `call` (attempt timeouts, hedge delays, deadlines); default the `clock` with setTimeout (tests inject manual ones). */
  callTimers?: CallTimers;
}

/** The defaults of AgentOptions (those of the agent's parts are theirs). */
export const AGENT_DEFAULTS = {
  timeoutMs: FEEDBACK_DEFAULTS.timeoutMs,
  probeTrials: DEFAULT_MAX_TRIALS,
  zoneAware: true,
  zoneMinHealthyPercent: ZONE_MIN_HEALTHY_PERCENT,
  batchMaxReports: BATCH_DEFAULTS.maxReports,
  batchMaxDelayMs: BATCH_DEFAULTS.maxDelayMs,
  loadTimeoutMs: FOLLOWER_DEFAULTS.loadTimeoutMs,
  holdEmptyUpdates: FOLLOWER_DEFAULTS.holdEmptyUpdates,
  maxPendingReports: 100_000,
  reportDelivery: ReportDelivery.acked,
  publishWindow: OUTBOX_DEFAULTS.window,
  ackTimeoutMs: 5000,
  retryIntervalMs: OUTBOX_DEFAULTS.probeMs,
  retryBackoffMs: OUTBOX_DEFAULTS.backoffMs,
  confirmDelayMs: OUTBOX_DEFAULTS.confirmDelayMs,
  flushTimeoutMs: 30_000,
  closeTimeoutMs: 5000,
} as const;

/** The options an agent runs with: every default filled in, every value checked. */
export interface ResolvedAgentOptions {
  readonly agentId: string;
  readonly prefix: string | undefined;
  readonly partitions: number;
  /** Stamped on reports. */
  readonly zone: string | undefined;
  /** Who the reports come from (the batches' `side`). */
  readonly side: ReportSide;
  /** The zone picks prefer: `zone` when zone-aware. */
  readonly pickZone: string | undefined;
  readonly zoneMinHealthyPercent: number;
  /** The strategy for every route, over the one a route names. */
  readonly strategy: StrategyName | undefined;
  readonly feedback: FeedbackOptions;
  readonly probeTrials: number;
  readonly batchMaxReports: number;
  readonly batchMaxDelayMs: number;
  readonly loadTimeoutMs: number;
  readonly holdEmptyUpdates: boolean;
  readonly maxPendingReports: number;
  readonly reportDelivery: ReportDelivery;
  readonly publishWindow: number;
  readonly ackTimeoutMs: number;
  readonly retryIntervalMs: number;
  readonly retryBackoffMs: number[];
  readonly confirmDelayMs: number;
  readonly flushTimeoutMs: number;
  readonly closeTimeoutMs: number;
  readonly random: Random;
  readonly clock: () => number;
}

/** Fills in the defaults and checks the values; throws RangeError on a bad one. */
export function resolveAgentOptions(opts: AgentOptions): ResolvedAgentOptions {
  const d = AGENT_DEFAULTS;
  const feedback: FeedbackOptions = { ...FEEDBACK_DEFAULTS, timeoutMs: opts.timeoutMs ?? d.timeoutMs };
  if (!(feedback.timeoutMs > 0)) throw new RangeError(`timeoutMs must be positive, got ${opts.timeoutMs}`);
  const zoneMinHealthyPercent = opts.zoneMinHealthyPercent ?? d.zoneMinHealthyPercent;
  if (!(zoneMinHealthyPercent >= 0 && zoneMinHealthyPercent <= 100)) throw new RangeError(`zoneMinHealthyPercent must be within 0-100, got ${zoneMinHealthyPercent}`);
  return {
    agentId: opts.agentId ?? `agent-${randomBytes(6).toString('hex')}`,
    prefix: opts.prefix,
    partitions: opts.partitions ?? DEFAULT_PARTITIONS,
    zone: opts.zone,
    side: opts.side === ReportSide.server ? ReportSide.server : ReportSide.client,
    pickZone: opts.zone !== undefined && (opts.zoneAware ?? d.zoneAware) !== false ? opts.zone : undefined,
    zoneMinHealthyPercent,
    strategy: opts.strategy,
    feedback,
    probeTrials: Math.max(1, Math.floor(opts.probeTrials ?? d.probeTrials)),
    batchMaxReports: opts.batchMaxReports ?? d.batchMaxReports,
    batchMaxDelayMs: opts.batchMaxDelayMs ?? d.batchMaxDelayMs,
    loadTimeoutMs: opts.loadTimeoutMs ?? d.loadTimeoutMs,
    holdEmptyUpdates: opts.holdEmptyUpdates ?? d.holdEmptyUpdates,
    maxPendingReports: Math.max(1, opts.maxPendingReports ?? d.maxPendingReports),
    reportDelivery: opts.reportDelivery ?? d.reportDelivery,
    publishWindow: opts.publishWindow ?? d.publishWindow,
    ackTimeoutMs: opts.ackTimeoutMs ?? d.ackTimeoutMs,
    retryIntervalMs: opts.retryIntervalMs ?? d.retryIntervalMs,
    retryBackoffMs: opts.retryBackoffMs ?? [...d.retryBackoffMs],
    confirmDelayMs: opts.confirmDelayMs ?? d.confirmDelayMs,
    flushTimeoutMs: opts.flushTimeoutMs ?? d.flushTimeoutMs,
    closeTimeoutMs: opts.closeTimeoutMs ?? d.closeTimeoutMs,
    random: opts.random ?? Math.random,
    clock: opts.clock ?? Date.now,
  };
}
