/**
 * The decisions of one logical call under a route's call policy, shared by
 * the SDK's `agent.call` (src/agent/call.ts) and the simulator (src/sim/):
 * what to do after an attempt failed (retry on another host, wait for an
 * attempt still out, or stop and why), when an idempotent call is hedged,
 * and whether a hedge may go now. The budgets are the agent's share
 * (./agent-budget.ts).
 *
 * Pure: time and randomness come in as arguments.
 */
import { AgentCallBudget, type AgentPolicy } from './agent-budget.ts';

/** Attempts of a call at most, the first included, by default (the SRE book's 3). */
export const DEFAULT_MAX_ATTEMPTS = 3;

/** What follows a failed attempt; the stops are the SDK's `CallStop` values. */
export const AfterFailure = {
  /** Try another host now (a retry, already counted in the budget). */
  retry: 'retry',
  /** Another attempt of the call is still out: wait for it. */
  wait: 'wait',
  notRetriable: 'not_retriable',
  attempts: 'attempts',
  deadline: 'deadline',
  budget: 'budget',
} as const;
export type AfterFailure = (typeof AfterFailure)[keyof typeof AfterFailure];

/** A call's state when one of its attempts failed. */
export interface FailedState {
  /** Whether the failure may be retried (the caller's classification). */
  readonly retriable: boolean;
  /** Attempts still out. */
  readonly live: number;
  /** Attempts made so far. */
  readonly made: number;
  readonly maxAttempts: number;
  readonly now: number;
  readonly deadline: number;
}

/**
 * After a failed attempt: retry (counted in `budget` when it fits), wait for
 * an attempt still out, or stop. A non-retriable failure stops the call only
 * when no attempt is still out.
 */
export function afterFailure(s: FailedState, budget: AgentCallBudget, policy: AgentPolicy): AfterFailure {
  if (!s.retriable) return s.live > 0 ? AfterFailure.wait : AfterFailure.notRetriable;
  if (s.live > 0) return AfterFailure.wait;
  if (s.made >= s.maxAttempts) return AfterFailure.attempts;
  if (s.now >= s.deadline) return AfterFailure.deadline;
  if (!budget.takeRetry(policy, s.now)) return AfterFailure.budget;
  return AfterFailure.retry;
}

/** A call's hedging options. */
export interface HedgeOptions {
  readonly idempotent?: boolean;
  readonly hedge?: boolean;
  /** Hedge after this long instead of the route's hedge delay, ms. */
  readonly hedgeDelayMs?: number;
  readonly maxAttempts: number;
}

/** When the call is hedged, ms after its start; undefined: it is not (not idempotent, hedging off, no delay published, a single attempt). */
export function hedgeDelay(policy: AgentPolicy, o: HedgeOptions): number | undefined {
  const d = o.hedgeDelayMs ?? policy.hedgeDelayMs;
  if (o.idempotent !== true || o.hedge === false || d === undefined || o.maxAttempts <= 1) return undefined;
  return d;
}

/**
 * At the hedge delay: whether the hedge goes (counted in `budget` when it
 * does). Only while the call is unanswered with an attempt still out and
 * attempts left.
 */
export function mayHedge(s: { settled: boolean; live: number; made: number; maxAttempts: number; now: number }, budget: AgentCallBudget, policy: AgentPolicy, delayMs: number): boolean {
  if (s.settled || s.live === 0 || s.made >= s.maxAttempts) return false;
  return budget.takeHedge(policy.hedgeDelayMs === delayMs ? policy : { ...policy, hedgeDelayMs: delayMs }, s.now);
}

/** Whether a new call is refused at once while the route sheds (`random` in [0, 1)). */
export function shedsCall(policy: AgentPolicy, random: number): boolean {
  return AgentCallBudget.shed(policy, random);
}
