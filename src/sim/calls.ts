/**
 * Simulated callers that make calls under the route's call policy, with the
 * decisions of the SDK's `agent.call` (actors/call-decide.ts) and each
 * agent's share of the route's budgets (actors/agent-budget.ts): a failed
 * attempt is retried on a host the call has not tried, within the budget,
 * the attempts allowed and the call's deadline; an idempotent call is hedged
 * after the route's hedge delay and the first answer wins (the loser is
 * released by its agent and not reported, and aborted: a host that honours
 * the abort stops working on it, as on an attempt past its timeout); while
 * the route sheds, a share of new calls fails at once. Retries and hedges
 * are reported with their attempt marks, so the route actor counts them.
 * A request waits for `fanout` calls made at once (each picked on its own).
 *
 * No clock: the engine (./engine.ts) calls in with the event queue's time.
 */
import { AgentCallBudget, type AgentPolicy } from '../../actors/agent-budget.ts';
import { AfterFailure, DEFAULT_MAX_ATTEMPTS, afterFailure, hedgeDelay, mayHedge, shedsCall } from '../../actors/call-decide.ts';
import { AttemptKind, CallRetcode } from '../../schemas/messages.ts';
import type { HostCall } from './hosts.ts';
import type { CallSpec } from './scenario.ts';

/** Why a simulated call stopped without a result (the SDK's `CallStop` values that can occur here). */
export type SimCallStop = 'budget' | 'deadline' | 'shed' | 'no_host' | 'attempts' | 'not_retriable';

/** Callers that keep no budget: retries up to the attempts allowed, no hedges, no shedding (the comparison without the policy). */
export const NO_CALL_POLICY: AgentPolicy = Object.freeze({ retryBudget: 0, retryFloor: Infinity, hedgeDelayMs: undefined, hedgeBudget: 0, shed: 0 });

/** Picks tried to find a host the call has not tried (as the SDK). */
const PICK_TRIES = 8;

/** A request: `fanout` calls started together; done when all are. */
export interface SimRequest {
  readonly start: number;
  readonly caller: number;
  pending: number;
  ok: boolean;
}

export interface LogicalCall {
  readonly req: SimRequest;
  readonly agent: number;
  readonly start: number;
  readonly deadline: number;
  readonly policy: AgentPolicy;
  made: number;
  settled: boolean;
  hedgeDelayMs: number | undefined;
  readonly tried: number[];
  readonly live: SimCall[];
}

/** One attempt as the engine and the host see it (a single pick, without `lc`, when the scenario has no `call`). */
export interface SimCall extends HostCall {
  agent: number;
  host: number;
  start: number;
  /** Answered, timed out or cancelled: the caller is done with it. */
  done: boolean;
  caller: number;
  /** The attempt's own timeout, ms from its start. */
  timeoutMs: number;
  lc?: LogicalCall;
  n?: number;
  kind?: AttemptKind;
}

/** What the engine does for the callers. */
export interface CallEnv {
  timeoutMs: number;
  /** A pick on `agent`'s strategy: a host index, or -1 for none. */
  pick(agent: number, now: number): number;
  /** The attempt goes out: the agent notes the pick, the host receives it, its timeout is due. */
  launch(call: SimCall, now: number): void;
  /** A cancelled attempt: its agent stops counting it in flight. */
  release(call: SimCall, now: number): void;
  /** The caller aborted the attempt (a hedge that lost, past its timeout): its host may stop working on it. */
  abort(call: SimCall, now: number): void;
  report(call: SimCall, retcode: number, latencyMs: number, now: number, utilization?: number): void;
  /** The hedge of `lc` is due at `t`. */
  hedgeAt(t: number, lc: LogicalCall): void;
  /** The agent's policy: its route state's call-policy figures. */
  policy(agent: number): AgentPolicy;
  random(agent: number): number;
  /** A logical call ended (its latency: from its start to its answer or its stop). */
  logicalDone(lc: LogicalCall, ok: boolean, latencyMs: number, now: number): void;
  requestDone(req: SimRequest, now: number): void;
}

/** Counts of the callers' calls. */
export interface CallCounts {
  requests: number;
  logical: number;
  first: number;
  retry: number;
  hedge: number;
  /** Attempts cancelled because another one of their call answered first. */
  cancelled: number;
  stops: Record<SimCallStop, number>;
}

export class SimCallers {
  readonly counts: CallCounts = { requests: 0, logical: 0, first: 0, retry: 0, hedge: 0, cancelled: 0, stops: { budget: 0, deadline: 0, shed: 0, no_host: 0, attempts: 0, not_retriable: 0 } };
  private readonly budgets: AgentCallBudget[];
  private readonly maxAttempts: number;
  private readonly fanout: number;
  private readonly spec: CallSpec;
  private readonly env: CallEnv;
  /** False: the callers keep no budget (NO_CALL_POLICY). */
  private readonly policyOn: boolean;

  constructor(spec: CallSpec, env: CallEnv, agents: number, policyOn: boolean) {
    this.spec = spec;
    this.env = env;
    this.policyOn = policyOn;
    this.budgets = Array.from({ length: agents }, () => new AgentCallBudget(0));
    this.maxAttempts = spec.max_attempts ?? DEFAULT_MAX_ATTEMPTS;
    this.fanout = spec.fanout ?? 1;
  }

  /** A request starts at `now` on `agent`. */
  request(agent: number, caller: number, now: number): void {
    const req: SimRequest = { start: now, caller, pending: this.fanout, ok: true };
    this.counts.requests++;
    for (let i = 0; i < this.fanout; i++) this.call(req, agent, now);
  }

  private call(req: SimRequest, agent: number, now: number): void {
    this.counts.logical++;
    const policy = this.policyOn ? this.env.policy(agent) : NO_CALL_POLICY;
    const lc: LogicalCall = { req, agent, start: now, deadline: now + this.env.timeoutMs * this.maxAttempts, policy, made: 0, settled: false, hedgeDelayMs: undefined, tried: [], live: [] };
    if (shedsCall(policy, this.env.random(agent))) return this.stop(lc, 'shed', now);
    this.budgets[agent]!.first(now);
    if (!this.attempt(lc, AttemptKind.first, now)) return this.stop(lc, 'no_host', now);
    lc.hedgeDelayMs = hedgeDelay(policy, { idempotent: this.spec.idempotent === true, maxAttempts: this.maxAttempts });
    if (lc.hedgeDelayMs !== undefined) this.env.hedgeAt(now + lc.hedgeDelayMs, lc);
  }

  /** One more attempt of `lc` on a host it has not tried; false when there is none. */
  private attempt(lc: LogicalCall, kind: AttemptKind, now: number): boolean {
    let host = -1;
    for (let i = 0; i < PICK_TRIES; i++) {
      const h = this.env.pick(lc.agent, now);
      if (h < 0) return false;
      if (!lc.tried.includes(h)) {
        host = h;
        break;
      }
    }
    if (host < 0) return false;
    lc.tried.push(host);
    const n = ++lc.made;
    if (kind === AttemptKind.first) this.counts.first++;
    else if (kind === AttemptKind.retry) this.counts.retry++;
    else this.counts.hedge++;
    const call: SimCall = { agent: lc.agent, host, start: now, done: false, caller: -1, hostDone: 0, ok: true, timeoutMs: Math.max(0, Math.min(this.env.timeoutMs, lc.deadline - now)), lc, n, kind };
    lc.live.push(call);
    this.env.launch(call, now);
    return true;
  }

  /** The host answered attempt `call` (of a logical call) at `now`, or refused it as overloaded (retcode -4, retried as the SDK does). */
  answered(call: SimCall, now: number, utilization: number | undefined, refused = false): void {
    const lc = call.lc!;
    this.end(call);
    this.env.report(call, refused ? CallRetcode.overloaded : call.ok ? 0 : 1, now - call.start, now, utilization);
    if (refused) return this.next(lc, true, now);
    if (!call.ok) return this.next(lc, this.spec.retry_errors !== false, now);
    lc.settled = true;
    for (const other of lc.live.splice(0)) {
      other.done = true;
      this.counts.cancelled++;
      this.env.release(other, now);
      this.env.abort(other, now);
    }
    this.finish(lc, true, now);
  }

  /** Attempt `call` got no answer within its timeout. */
  timedOut(call: SimCall, now: number): void {
    this.end(call);
    this.env.abort(call, now);
    this.env.report(call, 1, call.timeoutMs, now);
    this.next(call.lc!, true, now);
  }

  /** The hedge delay of `lc` passed. */
  hedge(lc: LogicalCall, now: number): void {
    if (mayHedge({ settled: lc.settled, live: lc.live.length, made: lc.made, maxAttempts: this.maxAttempts, now }, this.budgets[lc.agent]!, lc.policy, lc.hedgeDelayMs!)) this.attempt(lc, AttemptKind.hedge, now);
  }

  private end(call: SimCall): void {
    call.done = true;
    const live = call.lc!.live;
    live.splice(live.indexOf(call), 1);
  }

  private next(lc: LogicalCall, retriable: boolean, now: number): void {
    const d = afterFailure({ retriable, live: lc.live.length, made: lc.made, maxAttempts: this.maxAttempts, now, deadline: lc.deadline }, this.budgets[lc.agent]!, lc.policy);
    if (d === AfterFailure.wait) return;
    if (d !== AfterFailure.retry) return this.stop(lc, d, now);
    if (!this.attempt(lc, AttemptKind.retry, now)) this.stop(lc, 'no_host', now);
  }

  private stop(lc: LogicalCall, reason: SimCallStop, now: number): void {
    this.counts.stops[reason]++;
    lc.settled = true;
    this.finish(lc, false, now);
  }

  private finish(lc: LogicalCall, ok: boolean, now: number): void {
    this.env.logicalDone(lc, ok, now - lc.start, now);
    const req = lc.req;
    if (!ok) req.ok = false;
    if (--req.pending === 0) this.env.requestDone(req, now);
  }
}
