/**
 * One agent's share of a route's call policy, enforced locally with no
 * network hop: over the agent's own sliding window (one-second slots) its
 * retries stay within `retry_budget` × its first attempts + `retry_floor` ×
 * the window, its hedges within `hedge_budget` × its first attempts, and
 * while the route sheds it refuses that share of new calls. The figures come
 * with the route state (actors/call-policy.ts computes them at the route
 * node); a state without them leaves the agent's defaults.
 *
 * Pure: time and randomness come in as arguments. One per route, shared by
 * the SDK's `call` and the simulator.
 */
import type { RouteState } from '../schemas/messages.ts';
import { DEFAULT_PARAMS } from './params.ts';

/** The figures an agent enforces (a route state's call-policy fields, or the defaults). */
export interface AgentPolicy {
  readonly retryBudget: number;
  readonly retryFloor: number;
  /** Undefined: no hedging. */
  readonly hedgeDelayMs: number | undefined;
  readonly hedgeBudget: number;
  readonly shed: number;
}

/**
 * Without a route's figures (a node that publishes none, a route nobody has
 * called yet): the default retry percent and the route's default floor (as
 * if this agent were its only caller), no hedging (no latency has been
 * measured), no shedding.
 */
export const AGENT_POLICY_DEFAULTS: AgentPolicy = Object.freeze({
  retryBudget: DEFAULT_PARAMS.retry_budget_percent / 100,
  retryFloor: DEFAULT_PARAMS.retry_min_per_sec,
  hedgeDelayMs: undefined,
  hedgeBudget: DEFAULT_PARAMS.hedge_budget_percent / 100,
  shed: 0,
});

/** The policy a route state gives an agent. */
export function policyOf(s: RouteState | undefined): AgentPolicy {
  if (s === undefined || s.retry_budget === undefined) return AGENT_POLICY_DEFAULTS;
  return {
    retryBudget: s.retry_budget,
    retryFloor: s.retry_floor ?? AGENT_POLICY_DEFAULTS.retryFloor,
    hedgeDelayMs: s.hedge_delay_ms,
    hedgeBudget: s.hedge_budget ?? AGENT_POLICY_DEFAULTS.hedgeBudget,
    shed: s.shed ?? 0,
  };
}

const SLOT_MS = 1000;
/** The agent's window, s (the route's default call_window). */
export const AGENT_WINDOW_SEC = DEFAULT_PARAMS.call_window;

const FIRSTS = 0;
const RETRIES = 1;
const HEDGES = 2;
const FIELDS = 3;

export class AgentCallBudget {
  private readonly slots: number;
  private readonly counts: Float64Array;
  private head = 0;
  private slotStart: number;
  private readonly started: number;

  constructor(now: number, windowSec: number = AGENT_WINDOW_SEC) {
    this.slots = Math.max(1, Math.ceil(windowSec));
    this.counts = new Float64Array(this.slots * FIELDS);
    this.slotStart = now;
    this.started = now;
  }

  private advance(now: number): void {
    const elapsed = Math.floor((now - this.slotStart) / SLOT_MS);
    if (elapsed <= 0) return;
    const steps = Math.min(elapsed, this.slots);
    for (let i = 0; i < steps; i++) {
      this.head = (this.head + 1) % this.slots;
      this.counts.fill(0, this.head * FIELDS, this.head * FIELDS + FIELDS);
    }
    this.slotStart += elapsed * SLOT_MS;
  }

  private sum(field: number): number {
    let n = 0;
    for (let i = field; i < this.counts.length; i += FIELDS) n += this.counts[i]!;
    return n;
  }

  private add(field: number, now: number): void {
    this.advance(now);
    this.counts[this.head * FIELDS + field]!++;
  }

  /** A logical call's first attempt was sent. */
  first(now: number): void {
    this.add(FIRSTS, now);
  }

  /** Whether one more retry fits the budget now; when it does, it is counted. */
  takeRetry(p: AgentPolicy, now: number): boolean {
    this.advance(now);
    const span = Math.min(this.slots, Math.max(1, (now - this.started) / SLOT_MS));
    if (this.sum(RETRIES) + 1 > p.retryBudget * this.sum(FIRSTS) + p.retryFloor * span) return false;
    this.counts[this.head * FIELDS + RETRIES]!++;
    return true;
  }

  /** Whether one more hedge fits the budget now; when it does, it is counted. */
  takeHedge(p: AgentPolicy, now: number): boolean {
    this.advance(now);
    if (p.hedgeDelayMs === undefined || this.sum(HEDGES) + 1 > p.hedgeBudget * this.sum(FIRSTS)) return false;
    this.counts[this.head * FIELDS + HEDGES]!++;
    return true;
  }

  /** Whether a new call is refused while the route sheds (`random` in [0, 1)). */
  static shed(p: AgentPolicy, random: number): boolean {
    return p.shed > 0 && random < p.shed;
  }

  /** This agent's first attempts, retries and hedges in its window at `now`. */
  totals(now: number): { firsts: number; retries: number; hedges: number } {
    this.advance(now);
    return { firsts: this.sum(FIRSTS), retries: this.sum(RETRIES), hedges: this.sum(HEDGES) };
  }
}
