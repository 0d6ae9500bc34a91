/**
 * The agent SDK: picks hosts locally from a cached effective route (no
 * network hop per pick) and reports call results to the route nodes.
 *
 * Composed of a RouteFollower (route states kept current, see
 * route-follower.ts), a pick strategy per route, a ReportBatcher (per-route
 * batches by count and age) and, with acknowledged delivery (the default),
 * an Outbox that keeps every batch until JetStream has acknowledged it.
 * Each route is held as the agent-route model (actors/agent-route.ts) the
 * simulator runs too; the options are resolved in ./options.ts.
 */
import { randomBytes } from 'node:crypto';
import type { NatsConnection } from '@nats-io/transport-node';
import { names as makeNames, type Names } from '../../schemas/subjects.ts';
import { LIMITS, isIPv4, isPort, type ReportBatch, type RouteState } from '../../schemas/messages.ts';
import { AgentRoute, type MakeStrategy, type PickedHost } from '../../actors/agent-route.ts';
import { AgentCallBudget, policyOf } from '../../actors/agent-budget.ts';
import { createStrategy } from '../../actors/strategies/index.ts';
import { boundTrials, notePick, noteRelease, noteReport, type FeedbackOptions } from '../../actors/strategies/feedback.ts';
import { createZoneAware } from '../../actors/strategies/zone.ts';
import type { StrategyName, Random } from '../../actors/strategies/types.ts';
import { encode } from '../../schemas/codec.ts';
import { RejectCounter } from '../lib/rejects.ts';
import { connectNats, natsOptionsFromSdk } from '../nats/connect.ts';
import { silentLogger, type Logger } from '../lib/log.ts';
import { ClosedError } from '../lib/errors.ts';
import { RouteFollower, RouteStatus, type FollowedRoute } from './route-follower.ts';
import { ReportBatcher, type AttemptMark } from './report-batcher.ts';
import { Outbox } from './outbox.ts';
import { jetStreamPublisher } from './publisher.ts';
import { ReportDelivery, resolveAgentOptions, type AgentOptions } from './options.ts';
import { RateLimitedLog } from '../lib/ratelog.ts';
import { newCallCounters, runCall, type AttemptInfo, type CallCounters, type CallDeps, type CallOptions, type CallTimers } from './call.ts';

export { ReportDelivery, type AgentOptions } from './options.ts';
export { CallError, CallStop, classifyError, type AttemptInfo, type AttemptRecord, type CallOptions, type Classified } from './call.ts';

/** Result of a pick: a host, or why there is none. */
export type HostPick = PickedHost | { readonly ok: false; readonly code: NoHostCode; readonly message: string };

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
  /** `call()`: logical calls, attempts by kind, calls stopped without a result by why. */
  calls: CallCounters;
}

/** A route as the agent picks from it: the followed state, and the agent-route model kept current by it. */
class FollowedAgentRoute extends AgentRoute {
  readonly f: FollowedRoute;
  /** What `call` needs of the route (made on its first call): its picks, reports and this agent's budget. */
  calls: CallDeps | undefined = undefined;

  constructor(f: FollowedRoute, agentId: string, override: StrategyName | undefined, make: MakeStrategy) {
    super(agentId, override, make);
    this.f = f;
  }
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
  private readonly callTimers: CallTimers;
  /** The zone picks prefer, when zone-aware. */
  private readonly pickZone: string | undefined;
  private readonly zoneMinHealthyPercent: number;
  private readonly maxPendingReports: number;
  private readonly flushTimeoutMs: number;
  private readonly closeTimeoutMs: number;
  private readonly log: Logger;
  private readonly rateLog: RateLimitedLog;
  private readonly routes = new Map<number, Map<number, FollowedAgentRoute>>();
  private readonly batcher: ReportBatcher;
  private readonly outbox: Outbox | undefined;
  private readonly statusIter: AsyncIterable<unknown> & { stop?: () => void };
  private closed = false;
  private connected = true;
  private readonly counters = { picks: 0, reports: 0, droppedReports: 0 };
  private readonly callCounters = newCallCounters();

  /** Use createAgent(). */
  constructor(nc: NatsConnection, ownsConnection: boolean, opts: AgentOptions) {
    const o = resolveAgentOptions(opts);
    this.nc = nc;
    this.ownsConnection = ownsConnection;
    this.id = o.agentId;
    this.names = makeNames(o.prefix);
    this.strategyOverride = o.strategy;
    this.feedback = o.feedback;
    this.probeTrials = o.probeTrials;
    this.random = o.random;
    this.pickZone = o.pickZone;
    this.zoneMinHealthyPercent = o.zoneMinHealthyPercent;
    this.maxPendingReports = o.maxPendingReports;
    this.flushTimeoutMs = o.flushTimeoutMs;
    this.closeTimeoutMs = o.closeTimeoutMs;
    this.delivery = o.reportDelivery;
    const clock = o.clock;
    this.clock = clock;
    this.callTimers = opts.callTimers ?? { now: clock, set: (fn, ms) => setTimeout(fn, ms), clear: (h) => clearTimeout(h as ReturnType<typeof setTimeout>) };
    this.log = (opts.log ?? silentLogger()).child({ mod: 'agent', agent: this.id });
    this.rateLog = new RateLimitedLog(this.log, 10_000, clock);
    this.rejects = new RejectCounter(this.log);
    this.follower = new RouteFollower({ nc, names: this.names, loadTimeoutMs: o.loadTimeoutMs, holdEmptyUpdates: o.holdEmptyUpdates, rejects: this.rejects, log: this.log, clock });
    this.batcher = new ReportBatcher({
      names: this.names,
      partitions: o.partitions,
      sender: this.id,
      zone: o.zone,
      side: o.side,
      maxReports: o.batchMaxReports,
      maxDelayMs: o.batchMaxDelayMs,
      clock,
      sink: this.delivery === ReportDelivery.core ? this.publishCore : this.publishAcked,
    });
    if (this.delivery === ReportDelivery.acked) {
      this.outbox = new Outbox({
        publish: opts.publish ?? jetStreamPublisher(nc, o.ackTimeoutMs),
        sender: this.id,
        instance: randomBytes(4).toString('hex'),
        window: o.publishWindow,
        maxReports: this.maxPendingReports,
        extraPending: () => this.batcher.buffered,
        probeMs: o.retryIntervalMs,
        backoffMs: o.retryBackoffMs,
        confirmDelayMs: o.confirmDelayMs,
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

  private pickFrom(r: FollowedAgentRoute, key: string | undefined): HostPick {
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
  private pickNoted(r: FollowedAgentRoute, key: string | undefined, first: number): HostPick {
    const ages = r.weighsLoad;
    const now = ages ? this.clock() : this.clock;
    const i = boundTrials(r.strategy, r.hosts, key, first, now, this.probeTrials, this.feedback.timeoutMs);
    if (i < 0) return NO_HOST;
    const h = r.hosts[i]!;
    notePick(h, now, this.feedback, ages);
    this.counters.picks++;
    return h.result;
  }

  /**
   * One logical call under the route's call policy (./call.ts): picks a host,
   * runs `fn(host, signal, info)`, reports each attempt, retries retriable
   * failures on other hosts within the route's retry budget and the deadline,
   * hedges idempotent calls after the route's hedge delay, refuses calls while
   * the route sheds. Resolves with the first answer; rejects with a
   * `CallError` naming why it stopped and every attempt.
   */
  async call<T>(modid: number, cmdid: number, fn: (host: PickedHost, signal: AbortSignal, info: AttemptInfo) => Promise<T>, opts: CallOptions = {}): Promise<T> {
    const r = this.routeFor(modid, cmdid);
    if (r.f.status === RouteStatus.loading) await this.follower.waitLoaded(r.f);
    r.calls ??= this.callDeps(r, modid, cmdid);
    return runCall(modid, cmdid, r.calls, fn, opts);
  }

  private callDeps(r: FollowedAgentRoute, modid: number, cmdid: number): CallDeps {
    const random = this.random ?? Math.random;
    return {
      counters: this.callCounters,
      pick: (key) => {
        const p = this.pickFrom(r, key);
        return p.ok ? p : undefined;
      },
      release: (h) => this.release(modid, cmdid, h),
      report: (h, retcode, latencyMs, mark) => this.report(modid, cmdid, h, retcode, latencyMs, undefined, mark),
      policy: () => policyOf(r.f.state),
      budget: new AgentCallBudget(this.clock()),
      timers: this.callTimers,
      random: () => random(),
      timeoutMs: this.feedback.timeoutMs,
    };
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

  private routeFor(modid: number, cmdid: number): FollowedAgentRoute {
    let inner = this.routes.get(modid);
    if (inner === undefined) {
      inner = new Map();
      this.routes.set(modid, inner);
    }
    let r = inner.get(cmdid);
    if (r === undefined) {
      if (this.closed) throw new ClosedError('agent');
      const f = this.follower.route(modid, cmdid);
      r = new FollowedAgentRoute(f, this.id, this.strategyOverride, this.newStrategy);
      inner.set(cmdid, r);
      // First listener of the route: the hosts are current before any caller's listener runs.
      this.follower.follow(modid, cmdid, r.apply);
    }
    return r;
  }

  private readonly newStrategy: MakeStrategy = (name) => {
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
   * `mark`, for a call that was a retry or a hedge of a logical call (see
   * `call()`), is its attempt number (2..255) and kind: the route counts it
   * against the route's retry or hedge budget.
   */
  report(modid: number, cmdid: number, host: { ip: string; port: number }, retcode: number, latencyMs: number, utilization?: number, mark?: AttemptMark): void {
    if (this.closed) return;
    if (!Number.isInteger(retcode) || !(latencyMs >= 0)) throw new RangeError(`bad report: retcode ${retcode} latency ${latencyMs}`);
    if (utilization !== undefined && !(utilization >= 0 && utilization < Infinity)) throw new RangeError(`bad report: utilization ${utilization}`);
    if (mark !== undefined && !(Number.isInteger(mark.attempt) && mark.attempt >= 1 && mark.attempt <= LIMITS.maxAttempt && (mark.kind === 0 || mark.kind === 1 || mark.kind === 2))) {
      throw new RangeError(`bad report: attempt ${mark.attempt} kind ${mark.kind}`);
    }
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
    this.batcher.add(modid, cmdid, host, retcode, lat, utilization === undefined || utilization <= 1 ? utilization : 1, mark !== undefined && mark.kind !== 0 ? mark : undefined);
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
      calls: { ...this.callCounters, stops: { ...this.callCounters.stops } },
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
  // Bad options fail before a connection is opened (the agent resolves them again, to the same id).
  const agentId = resolveAgentOptions(opts).agentId;
  // No async stack traces: the client would build two Error objects per acknowledged publish.
  const url = opts.servers ?? (process.env['LARS_NATS_URL'] || 'nats://127.0.0.1:4222');
  const nc = await connectNats({ ...natsOptionsFromSdk(url, opts), name: opts.agentId ?? 'lars-agent', extra: { noAsyncTraces: true } });
  return new Agent(nc, true, { ...opts, agentId });
}
