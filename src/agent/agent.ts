/**
 * The agent SDK: picks hosts locally from a cached effective route (no
 * network hop per pick) and reports call results to the route nodes.
 *
 * Composed of a RouteFollower (route states kept current, see
 * route-follower.ts), a pick strategy per route, a ReportBatcher (per-route
 * batches by count and age) and, with acknowledged delivery (the default),
 * an Outbox that keeps every batch until JetStream has acknowledged it.
 */
import { randomBytes } from 'node:crypto';
import type { NatsConnection } from '@nats-io/transport-node';
import { names as makeNames, DEFAULT_PARTITIONS, type Names } from '../../schemas/subjects.ts';
import { HostState, LIMITS, isIPv4, isPort, type ReportBatch, type RouteState } from '../../schemas/messages.ts';
import { trialWeight } from '../../actors/strategies/hosts.ts';
import { createStrategy, DEFAULT_STRATEGY } from '../../actors/strategies/index.ts';
import { DEFAULT_MAX_TRIALS, FEEDBACK_DEFAULTS, boundTrials, notePick, noteRelease, noteReport, weighsLoad, type FeedbackOptions } from '../../actors/strategies/feedback.ts';
import { createZoneAware, ZONE_MIN_HEALTHY_PERCENT } from '../../actors/strategies/zone.ts';
import type { PickableHost, Strategy, StrategyName, Random } from '../../actors/strategies/types.ts';
import { encode } from '../lib/codec.ts';
import { RejectCounter } from '../lib/rejects.ts';
import { connectNats, natsOptionsFromSdk, type NatsLoginOptions } from '../nats/connect.ts';
import { silentLogger, type Logger } from '../lib/log.ts';
import { ClosedError } from '../lib/errors.ts';
import { RouteFollower, RouteStatus, type FollowedRoute } from './route-follower.ts';
import { ReportBatcher } from './report-batcher.ts';
import { Outbox, jetStreamPublisher, type PublishFn } from './outbox.ts';
import { RateLimitedLog } from '../lib/ratelog.ts';

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
}

/** Result of a pick: a host, or why there is none. */
export type HostPick =
  | { readonly ok: true; readonly ip: string; readonly port: number }
  | { readonly ok: false; readonly code: NoHostCode; readonly message: string };

export const NoHostCode = {
  /** No live state: the route is not registered (or was removed), or is still loading (see `message`). */
  noRoute: 'NO_ROUTE',
  /** The route has no host that may be picked now (Lars RET_OVERLOAD). */
  noHost: 'NO_HOST',
} as const;
export type NoHostCode = (typeof NoHostCode)[keyof typeof NoHostCode];

export interface AgentStats {
  routes: number;
  picks: number;
  /** Reports accepted by `report()`. */
  reports: number;
  /** Batches made. */
  batches: number;
  /** Reports buffered or not yet acknowledged. */
  pendingReports: number;
  /** Batches acknowledged by JetStream ('acked' delivery). */
  ackedBatches: number;
  /** Publishes of a batch after its first ('acked' delivery). */
  retriedBatches: number;
  /** Batches acknowledged around a stall and published once more to confirm them ('acked' delivery). */
  confirmedBatches: number;
  /** Reports given up: beyond maxPendingReports, refused by the client ('core'), or unacknowledged at close. */
  droppedReports: number;
  routeUpdates: number;
  staleUpdates: number;
  /** Route updates not applied because they would leave no pickable host (the last good state was kept). */
  heldEmptyUpdates: number;
  resyncs: number;
  rejects: Record<string, number>;
}

class AgentHost implements PickableHost {
  readonly ip: string;
  readonly port: number;
  pickWeight: number;
  state: PickableHost['state'];
  reason: PickableHost['reason'] = undefined;
  /**
   * `state === 'probing'`, kept with it: the pick path tests it on every pick, and a
   * state decoded from a message is a string of its own, slower to compare than a boolean.
   */
  probing: boolean;
  /** Registry weight and zone, for zone-aware picking. */
  weight = 0;
  zone: string | null | undefined = undefined;
  latencyMs = 0;
  inflight = 0;
  // the feedback's fields (actors/strategies/feedback.ts), present from the start: one object shape
  latencyTs: number | undefined = undefined;
  pendingSum: number | undefined = undefined;
  lifeTs: number | undefined = undefined;
  /** Preallocated pick result: picking allocates nothing. */
  readonly result: HostPick;

  constructor(ip: string, port: number, pickWeight: number, state: PickableHost['state']) {
    this.ip = ip;
    this.port = port;
    this.pickWeight = pickWeight;
    this.state = state;
    this.probing = state === HostState.probing;
    this.result = Object.freeze({ ok: true as const, ip, port });
  }
}

/** A route as the agent picks from it: the followed state, its hosts and a strategy. */
class AgentRoute {
  readonly f: FollowedRoute;
  hosts: AgentHost[] = [];
  byKey = new Map<string, AgentHost>();
  byResult = new Map<object, AgentHost>();
  strategy: Strategy;
  /** Whether the strategy weighs load (feedback.ts `weighsLoad`): its picks read the clock. */
  weighsLoad: boolean;
  private strategyName: StrategyName;
  private readonly override: StrategyName | undefined;
  private readonly make: (name: StrategyName) => Strategy;

  /** This agent's id: a probing host whose trials are another agent's is picked with weight 0 here. */
  private readonly agentId: string;

  constructor(f: FollowedRoute, override: StrategyName | undefined, make: (name: StrategyName) => Strategy, agentId: string) {
    this.f = f;
    this.agentId = agentId;
    this.override = override;
    this.make = make;
    this.strategyName = override ?? DEFAULT_STRATEGY;
    this.strategy = make(this.strategyName);
    this.weighsLoad = weighsLoad(this.strategyName);
  }

  /** Applies a new state: the agent's listener, called before any caller's. */
  readonly apply = (s: RouteState): void => {
    let next = this.hosts;
    let same = next.length === s.hosts.length;
    for (let i = 0; same && i < next.length; i++) {
      const a = next[i]!;
      const h = s.hosts[i]!;
      same = a.ip === h.ip && a.port === h.port;
    }
    if (same) {
      // The usual change (states and weights of the same hosts): no maps rebuilt.
      for (let i = 0; i < next.length; i++) {
        const a = next[i]!;
        const h = s.hosts[i]!;
        a.pickWeight = trialWeight(h, this.agentId);
        a.state = h.state;
        a.reason = h.reason;
        a.probing = h.state === HostState.probing;
        a.weight = h.weight;
        a.zone = h.zone;
      }
    } else {
      next = [];
      const byKey = new Map<string, AgentHost>();
      const byResult = new Map<object, AgentHost>();
      for (const h of s.hosts) {
        const key = `${h.ip}:${h.port}`;
        let ah = this.byKey.get(key);
        if (ah === undefined) ah = new AgentHost(h.ip, h.port, h.pick_weight, h.state);
        ah.pickWeight = trialWeight(h, this.agentId);
        ah.state = h.state;
        ah.reason = h.reason;
        ah.probing = h.state === HostState.probing;
        ah.weight = h.weight;
        ah.zone = h.zone;
        next.push(ah);
        byKey.set(key, ah);
        byResult.set(ah.result, ah);
      }
      this.hosts = next;
      this.byKey = byKey;
      this.byResult = byResult;
    }
    // The caller's override, else the route's strategy, else the default.
    const name = this.override ?? s.strategy ?? DEFAULT_STRATEGY;
    if (name !== this.strategyName) {
      this.strategyName = name;
      this.strategy = this.make(name);
      this.weighsLoad = weighsLoad(name);
    }
    this.strategy.update({ hosts: next, panic: s.panic, probeNum: s.probe_num });
  };
}

const NOT_REGISTERED: HostPick = Object.freeze({ ok: false as const, code: NoHostCode.noRoute, message: 'route is not registered' });
const LOADING: HostPick = Object.freeze({ ok: false as const, code: NoHostCode.noRoute, message: 'route is loading' });
const NO_HOST: HostPick = Object.freeze({ ok: false as const, code: NoHostCode.noHost, message: 'no host may be picked now' });

export class Agent {
  readonly id: string;
  readonly names: Names;
  /** Follows the routes this agent uses (usable on its own, see RouteFollower). */
  readonly follower: RouteFollower;
  readonly rejects: RejectCounter;
  readonly delivery: ReportDelivery;
  private readonly nc: NatsConnection;
  private readonly ownsConnection: boolean;
  private readonly strategyOverride: StrategyName | undefined;
  private readonly feedback: FeedbackOptions;
  private readonly probeTrials: number;
  private readonly clock: () => number;
  private readonly random: Random | undefined;
  /** The zone picks prefer, when zone-aware. */
  private readonly pickZone: string | undefined;
  private readonly zoneMinHealthyPercent: number;
  private readonly maxPendingReports: number;
  private readonly flushTimeoutMs: number;
  private readonly closeTimeoutMs: number;
  private readonly log: Logger;
  private readonly rateLog: RateLimitedLog;
  private readonly routes = new Map<number, Map<number, AgentRoute>>();
  private readonly batcher: ReportBatcher;
  private readonly outbox: Outbox | undefined;
  private readonly statusIter: AsyncIterable<unknown> & { stop?: () => void };
  private closed = false;
  private connected = true;
  private readonly counters = { picks: 0, reports: 0, droppedReports: 0 };

  /** Use createAgent(). */
  constructor(nc: NatsConnection, ownsConnection: boolean, opts: AgentOptions) {
    this.nc = nc;
    this.ownsConnection = ownsConnection;
    this.id = opts.agentId ?? `agent-${randomBytes(6).toString('hex')}`;
    this.names = makeNames(opts.prefix);
    this.strategyOverride = opts.strategy;
    this.feedback = { ...FEEDBACK_DEFAULTS, timeoutMs: opts.timeoutMs ?? FEEDBACK_DEFAULTS.timeoutMs };
    this.probeTrials = Math.max(1, Math.floor(opts.probeTrials ?? DEFAULT_MAX_TRIALS));
    if (!(this.feedback.timeoutMs > 0)) throw new RangeError(`timeoutMs must be positive, got ${opts.timeoutMs}`);
    this.random = opts.random ?? Math.random;
    this.pickZone = opts.zone !== undefined && opts.zoneAware !== false ? opts.zone : undefined;
    this.zoneMinHealthyPercent = opts.zoneMinHealthyPercent ?? ZONE_MIN_HEALTHY_PERCENT;
    if (!(this.zoneMinHealthyPercent >= 0 && this.zoneMinHealthyPercent <= 100)) throw new RangeError(`zoneMinHealthyPercent must be within 0-100, got ${this.zoneMinHealthyPercent}`);
    this.maxPendingReports = Math.max(1, opts.maxPendingReports ?? 100_000);
    this.flushTimeoutMs = opts.flushTimeoutMs ?? 30_000;
    this.closeTimeoutMs = opts.closeTimeoutMs ?? 5000;
    this.delivery = opts.reportDelivery ?? ReportDelivery.acked;
    const clock = opts.clock ?? Date.now;
    this.clock = clock;
    this.log = (opts.log ?? silentLogger()).child({ mod: 'agent', agent: this.id });
    this.rateLog = new RateLimitedLog(this.log, 10_000, clock);
    this.rejects = new RejectCounter(this.log);
    this.follower = new RouteFollower({ nc, names: this.names, loadTimeoutMs: opts.loadTimeoutMs, holdEmptyUpdates: opts.holdEmptyUpdates, rejects: this.rejects, log: this.log, clock });
    this.batcher = new ReportBatcher({
      names: this.names,
      partitions: opts.partitions ?? DEFAULT_PARTITIONS,
      sender: this.id,
      zone: opts.zone,
      maxReports: opts.batchMaxReports,
      maxDelayMs: opts.batchMaxDelayMs,
      clock,
      sink: this.delivery === ReportDelivery.core ? this.publishCore : this.publishAcked,
    });
    if (this.delivery === ReportDelivery.acked) {
      const ackTimeoutMs = opts.ackTimeoutMs ?? 5000;
      this.outbox = new Outbox({
        publish: opts.publish ?? jetStreamPublisher(nc, ackTimeoutMs),
        sender: this.id,
        instance: randomBytes(4).toString('hex'),
        window: opts.publishWindow,
        maxReports: this.maxPendingReports,
        extraPending: () => this.batcher.buffered,
        probeMs: opts.retryIntervalMs,
        backoffMs: opts.retryBackoffMs,
        confirmDelayMs: opts.confirmDelayMs,
        noStreamHint: `start a route node ('lars node') or the sink ('lars sink'): either creates the ${this.names.reportsStream} stream`,
        log: this.log,
        clock,
      });
    }
    const it = nc.status();
    this.statusIter = it;
    void this.watchStatus(it);
  }

  /** The agent's NATS connection (its own, or the one it was given). */
  get connection(): NatsConnection {
    return this.nc;
  }

  // ---------------------------------------------------------------- picking

  /**
   * Picks a host for a call. On a route's first use, waits (at most
   * loadTimeoutMs) for its current state; after that it answers from the
   * local cache at once.
   */
  async getHost(modid: number, cmdid: number, key?: string): Promise<HostPick> {
    const r = this.routeFor(modid, cmdid);
    if (r.f.status === RouteStatus.loading) await this.follower.waitLoaded(r.f);
    return this.pickFrom(r, key);
  }

  /**
   * Synchronous pick from the local cache. A route not loaded yet answers
   * NO_ROUTE 'route is loading' (and starts loading), as Lars does on a first call.
   */
  pick(modid: number, cmdid: number, key?: string): HostPick {
    return this.pickFrom(this.routeFor(modid, cmdid), key);
  }

  private pickFrom(r: AgentRoute, key: string | undefined): HostPick {
    const st = r.f.status;
    if (st !== RouteStatus.loaded) return st === RouteStatus.loading ? LOADING : NOT_REGISTERED;
    const i = r.strategy.pick(key);
    if (i < 0) return NO_HOST;
    const h = r.hosts[i]!;
    // The usual case of feedback.ts' pickBounded and notePick, kept small: a strategy that does not
    // weigh load, a host that is not probing (no trial bound) with calls in flight (no clock): a count.
    if (h.inflight === 0 || r.weighsLoad || h.probing) return this.pickNoted(r, key, i);
    h.inflight++;
    this.counters.picks++;
    return h.result;
  }

  /** The rest of a pick: the probing hosts' trial bound, and the clock where the answer depends on it. */
  private pickNoted(r: AgentRoute, key: string | undefined, first: number): HostPick {
    const ages = r.weighsLoad;
    const now = ages ? this.clock() : this.clock;
    const i = boundTrials(r.strategy, r.hosts, key, first, now, this.probeTrials, this.feedback.timeoutMs);
    if (i < 0) return NO_HOST;
    const h = r.hosts[i]!;
    notePick(h, now, this.feedback, ages);
    this.counters.picks++;
    return h.result;
  }

  /** The current effective route (loading it on first use), or undefined when it is not registered. */
  async getRoute(modid: number, cmdid: number): Promise<RouteState | undefined> {
    this.routeFor(modid, cmdid);
    return this.follower.get(modid, cmdid);
  }

  /** Calls `listener` with every new state of the route (and the current one, once loaded). Returns a remover. */
  watchRoute(modid: number, cmdid: number, listener: (s: RouteState) => void): () => void {
    this.routeFor(modid, cmdid);
    return this.follower.follow(modid, cmdid, listener);
  }

  /** Loads routes ahead of their first pick. */
  async prepare(routes: Array<[modid: number, cmdid: number]>): Promise<void> {
    await Promise.all(routes.map(([m, c]) => this.getRoute(m, c)));
  }

  private routeFor(modid: number, cmdid: number): AgentRoute {
    let inner = this.routes.get(modid);
    if (inner === undefined) {
      inner = new Map();
      this.routes.set(modid, inner);
    }
    let r = inner.get(cmdid);
    if (r === undefined) {
      if (this.closed) throw new ClosedError('agent');
      const f = this.follower.route(modid, cmdid);
      r = new AgentRoute(f, this.strategyOverride, this.newStrategy, this.id);
      inner.set(cmdid, r);
      // First listener of the route: the hosts are current before any caller's listener runs.
      this.follower.follow(modid, cmdid, r.apply);
    }
    return r;
  }

  private readonly newStrategy = (name: StrategyName): Strategy => {
    const random = this.random;
    const opts = { random, now: this.clock, decayMs: this.feedback.decayMs, timeoutMs: this.feedback.timeoutMs };
    if (this.pickZone === undefined) return createStrategy(name, opts);
    return createZoneAware(() => createStrategy(name, opts), { zone: this.pickZone, minHealthyPercent: this.zoneMinHealthyPercent, random });
  };

  private async watchStatus(it: AsyncIterable<unknown>): Promise<void> {
    try {
      for await (const s of it) {
        if (this.closed) return;
        const type = (s as { type?: string }).type;
        if (type === 'disconnect') this.connected = false;
        if (type === 'reconnect') {
          this.connected = true;
          this.batcher.flush();
          this.outbox?.kick();
        }
      }
    } catch {
      // the connection closed
    }
  }

  // ---------------------------------------------------------------- reporting

  /**
   * Gives back a pick that was not used: no call was made to the host (an
   * integration whose connection to it was still opening, a caller that gave
   * up before calling). Nothing is reported; the host only stops counting the
   * call as in flight, which a strategy weighing load, and a probing host's
   * bound on trial calls, would otherwise count until the caller's timeout.
   */
  release(modid: number, cmdid: number, host: HostPick & { ok: true }): void {
    const h = this.routes.get(modid)?.get(cmdid)?.byResult.get(host);
    if (h !== undefined) noteRelease(h, this.clock());
  }

  /**
   * Records a call result: retcode 0 is success, anything else an error
   * (Lars); latencyMs is the call's duration. Batched to the route nodes.
   * `utilization`, when the host answered with one (e.g. an ORCA load report
   * in the response), is the host's busy share, 0..1: the route node turns
   * it into the host's load-driven pick weight. Above 1 counts as 1; a
   * negative or non-finite value is a RangeError, as a bad latency is.
   */
  report(modid: number, cmdid: number, host: { ip: string; port: number }, retcode: number, latencyMs: number, utilization?: number): void {
    if (this.closed) return;
    if (!Number.isInteger(retcode) || !(latencyMs >= 0)) throw new RangeError(`bad report: retcode ${retcode} latency ${latencyMs}`);
    if (utilization !== undefined && !(utilization >= 0 && utilization < Infinity)) throw new RangeError(`bad report: utilization ${utilization}`);
    const lat = latencyMs > LIMITS.maxLatencyMs ? LIMITS.maxLatencyMs : latencyMs;
    // A pick result of this agent is known valid and found by identity: no string building, no regex.
    const r = this.routes.get(modid)?.get(cmdid);
    let h = r?.byResult.get(host);
    if (h === undefined) {
      if (!isIPv4(host.ip) || !isPort(host.port)) throw new RangeError(`bad report: host ${host.ip}:${host.port}`);
      h = r?.byKey.get(`${host.ip}:${host.port}`);
    }
    // local feedback for the latency-aware strategies (the simulator applies the same function)
    if (h !== undefined) noteReport(h, retcode === 0, lat, this.clock(), this.feedback);
    this.counters.reports++;
    this.batcher.add(modid, cmdid, host, retcode, lat, utilization === undefined || utilization <= 1 ? utilization : 1);
  }

  private readonly publishAcked = (subject: string, batch: ReportBatch, n: number): void => {
    this.outbox!.add(subject, encode(batch), n);
  };

  private readonly publishCore = (subject: string, batch: ReportBatch, n: number): void => {
    try {
      this.nc.publish(subject, encode(batch));
    } catch (err) {
      this.counters.droppedReports += n;
      this.rateLog.emit('warn', 'core-publish', { err, reports: n }, 'report batch could not be published; dropped');
    }
  };

  /** Hands every buffered report to the network now (does not wait). */
  flushAll(): void {
    this.batcher.flush();
  }

  /**
   * Sends buffered reports and waits until the server has them: with 'acked'
   * delivery, until JetStream acknowledged every batch made so far (rejects
   * with a LARS_TIMEOUT error after `timeoutMs`, default flushTimeoutMs);
   * with 'core', until the server has processed what was sent.
   */
  async flush(opts: { timeoutMs?: number } = {}): Promise<void> {
    this.batcher.flush();
    if (this.outbox) await this.outbox.settled(opts.timeoutMs ?? this.flushTimeoutMs);
    else if (!this.nc.isClosed()) await this.nc.flush();
  }

  /** False between a lost connection and the reconnect (picks keep working from the cache). */
  isConnected(): boolean {
    return this.connected && !this.nc.isClosed();
  }

  stats(): AgentStats {
    let routes = 0;
    for (const inner of this.routes.values()) routes += inner.size;
    const o = this.outbox?.stats();
    const f = this.follower.stats();
    return {
      routes,
      picks: this.counters.picks,
      reports: this.counters.reports,
      batches: this.batcher.batches,
      pendingReports: this.batcher.buffered + (o?.pendingReports ?? 0),
      ackedBatches: o?.ackedBatches ?? 0,
      retriedBatches: o?.retriedBatches ?? 0,
      confirmedBatches: o?.confirmedBatches ?? 0,
      droppedReports: this.counters.droppedReports + (o?.droppedReports ?? 0),
      routeUpdates: f.routeUpdates,
      staleUpdates: f.staleUpdates,
      heldEmptyUpdates: f.heldEmptyUpdates,
      resyncs: f.resyncs,
      rejects: this.rejects.snapshot(),
    };
  }

  /** Flushes reports (waiting at most closeTimeoutMs for acks; what is left is dropped and counted), unsubscribes. */
  async close(): Promise<void> {
    if (this.closed) return;
    try {
      if (this.nc.isClosed()) this.batcher.flush();
      else await this.flush({ timeoutMs: this.closeTimeoutMs });
    } catch {
      // closing anyway; abandon() counts and logs what is left
    }
    this.closed = true;
    this.batcher.stop();
    this.outbox?.abandon();
    this.statusIter.stop?.();
    this.follower.close();
    if (this.ownsConnection) await this.nc.drain().catch(() => this.nc.close());
  }
}

/** Creates an agent on an open connection or on a new one to `servers`, logged in as its options or LARS_NATS_* say. */
export async function createAgent(opts: AgentOptions = {}): Promise<Agent> {
  if (opts.nc) return new Agent(opts.nc, false, opts);
  // No async stack traces: the client would build two Error objects per acknowledged publish.
  const url = opts.servers ?? (process.env['LARS_NATS_URL'] || 'nats://127.0.0.1:4222');
  const nc = await connectNats({ ...natsOptionsFromSdk(url, opts), name: opts.agentId ?? 'lars-agent', extra: { noAsyncTraces: true } });
  return new Agent(nc, true, opts);
}
