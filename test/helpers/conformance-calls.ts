/**
 * Conformance vectors of the call policy an agent enforces
 * (schemas/conformance/calls.json), from the pure rules every SDK's `call`
 * follows: the policy a route state gives (actors/agent-budget.ts
 * policyOf), the agent's budget over its sliding window (AgentCallBudget)
 * run through seeded scripts, and the decisions of one call
 * (actors/call-decide.ts: after a failed attempt, the hedge delay, whether
 * a hedge goes, shedding).
 */
import { AgentCallBudget, AGENT_POLICY_DEFAULTS, policyOf, type AgentPolicy } from '../../actors/agent-budget.ts';
import { afterFailure, hedgeDelay, mayHedge, shedsCall, type AfterFailure, type FailedState } from '../../actors/call-decide.ts';
import { seededRandom } from '../../actors/strategies/index.ts';
import type { RouteState } from '../../schemas/messages.ts';

/** A policy as the vectors write it (no hedging: hedge_delay_ms null). */
export interface PolicyVector {
  retry_budget: number;
  retry_floor: number;
  hedge_delay_ms: number | null;
  hedge_budget: number;
  shed: number;
}

const toVector = (p: AgentPolicy): PolicyVector => ({ retry_budget: p.retryBudget, retry_floor: p.retryFloor, hedge_delay_ms: p.hedgeDelayMs ?? null, hedge_budget: p.hedgeBudget, shed: p.shed });

type CallFields = Partial<Pick<RouteState, 'retry_budget' | 'retry_floor' | 'hedge_delay_ms' | 'hedge_budget' | 'shed'>>;

function policyVectors(): Array<{ name: string; state: CallFields | null; want: PolicyVector }> {
  const cases: Array<[string, CallFields | null]> = [
    ['no state', null],
    ['a state without the policy', {}],
    ['a hedge delay without a retry budget (the defaults)', { hedge_delay_ms: 20 }],
    ['every field', { retry_budget: 0.2, retry_floor: 1.5, hedge_delay_ms: 35.5, hedge_budget: 0.05, shed: 0.25 }],
    ['only the retry budget', { retry_budget: 0.1 }],
    ['zeros', { retry_budget: 0, retry_floor: 0, hedge_delay_ms: 0, hedge_budget: 0, shed: 0 }],
  ];
  return cases.map(([name, s]) => ({ name, state: s, want: toVector(policyOf(s === null ? undefined : ({ ...s } as RouteState))) }));
}

type BudgetStep = { op: 'first'; now: number } | { op: 'retry' | 'hedge'; now: number; want: boolean } | { op: 'totals'; now: number; want: { firsts: number; retries: number; hedges: number } };

export interface BudgetVector {
  name: string;
  policy: PolicyVector;
  window_sec: number;
  start: number;
  steps: BudgetStep[];
}

const T0 = 1_764_115_200_000;

/** A seeded script of first attempts, retries and hedges on one agent's budget, the reference's answer after each. */
function budgetScript(name: string, policy: AgentPolicy, windowSec: number, seed: number, steps: number, meanGapMs: number): BudgetVector {
  const random = seededRandom(seed);
  const b = new AgentCallBudget(T0, windowSec);
  let now = T0;
  const out: BudgetStep[] = [];
  for (let i = 0; i < steps; i++) {
    now += Math.floor(random() * 2 * meanGapMs);
    const r = random();
    if (r < 0.6) {
      b.first(now);
      out.push({ op: 'first', now });
    } else if (r < 0.8) out.push({ op: 'retry', now, want: b.takeRetry(policy, now) });
    else if (r < 0.95) out.push({ op: 'hedge', now, want: b.takeHedge(policy, now) });
    else out.push({ op: 'totals', now, want: b.totals(now) });
  }
  out.push({ op: 'totals', now, want: b.totals(now) });
  return { name, policy: toVector(policy), window_sec: windowSec, start: T0, steps: out };
}

function budgetVectors(): BudgetVector[] {
  const hedging: AgentPolicy = { retryBudget: 0.2, retryFloor: 1, hedgeDelayMs: 30, hedgeBudget: 0.1, shed: 0 };
  return [
    budgetScript('defaults, calls every ~50 ms', AGENT_POLICY_DEFAULTS, 10, 1, 400, 50),
    budgetScript('budget 0.2, floor 1, hedging 0.1, calls every ~20 ms', hedging, 10, 2, 600, 20),
    budgetScript('no floor, a window of 3 s, calls every ~400 ms (slots expire)', { ...hedging, retryFloor: 0, retryBudget: 0.5 }, 3, 3, 300, 400),
    budgetScript('no hedging published', { ...hedging, hedgeDelayMs: undefined }, 10, 4, 200, 30),
    budgetScript('a fractional window, gaps past the window', { ...hedging, retryFloor: 0.5 }, 2.5, 5, 200, 1500),
  ];
}

function afterFailureVectors(): Array<{ name: string; policy: PolicyVector; firsts: number; state: FailedState; want: AfterFailure }> {
  const p: AgentPolicy = { retryBudget: 0.1, retryFloor: 0, hedgeDelayMs: undefined, hedgeBudget: 0.05, shed: 0 };
  const base: FailedState = { retriable: true, live: 0, made: 1, maxAttempts: 3, now: T0 + 500, deadline: T0 + 2000 };
  const cases: Array<[string, AgentPolicy, number, Partial<FailedState>]> = [
    ['retry within the budget', p, 10, {}],
    ['no budget left (one retry per ten first attempts)', p, 9, {}],
    ['the floor lets it retry', { ...p, retryFloor: 1 }, 0, {}],
    ['not retriable', p, 10, { retriable: false }],
    ['not retriable, a hedge still out', p, 10, { retriable: false, live: 1 }],
    ['an attempt still out', p, 10, { live: 1 }],
    ['attempts used up', p, 10, { made: 3 }],
    ['past the deadline', p, 10, { now: T0 + 2000 }],
  ];
  return cases.map(([name, policy, firsts, change]) => {
    const b = new AgentCallBudget(T0);
    for (let i = 0; i < firsts; i++) b.first(T0);
    const state = { ...base, ...change };
    return { name, policy: toVector(policy), firsts, state, want: afterFailure(state, b, policy) };
  });
}

function hedgeVectors(): {
  hedge_delays: Array<{ name: string; policy_hedge_delay_ms: number | null; idempotent: boolean | null; hedge: boolean | null; hedge_delay_ms: number | null; max_attempts: number; want: number | null }>;
  may_hedge: Array<{ name: string; policy: PolicyVector; firsts: number; delay_ms: number; settled: boolean; live: number; made: number; max_attempts: number; want: boolean }>;
  shed: Array<{ shed: number; random: number; want: boolean }>;
} {
  const delays: Array<[string, number | null, boolean | null, boolean | null, number | null, number]> = [
    ['idempotent, the route publishes a delay', 30, true, null, null, 3],
    ['not idempotent', 30, false, null, null, 3],
    ['idempotent not said', 30, null, null, null, 3],
    ['hedging turned off by the call', 30, true, false, null, 3],
    ['no delay published', null, true, null, null, 3],
    ['the call names its own delay', null, true, null, 12, 3],
    ['the call names its own delay over the route\'s', 30, true, true, 12, 3],
    ['a single attempt', 30, true, null, null, 1],
  ];
  const hedge_delays = delays.map(([name, pd, idempotent, hedge, own, max]) => {
    const policy = { ...AGENT_POLICY_DEFAULTS, hedgeDelayMs: pd ?? undefined };
    const want = hedgeDelay(policy, { ...(idempotent === null ? {} : { idempotent }), ...(hedge === null ? {} : { hedge }), ...(own === null ? {} : { hedgeDelayMs: own }), maxAttempts: max });
    return { name, policy_hedge_delay_ms: pd, idempotent, hedge, hedge_delay_ms: own, max_attempts: max, want: want ?? null };
  });
  const p: AgentPolicy = { retryBudget: 0.1, retryFloor: 0, hedgeDelayMs: 30, hedgeBudget: 0.1, shed: 0 };
  const may: Array<[string, AgentPolicy, number, number, { settled: boolean; live: number; made: number; maxAttempts: number }]> = [
    ['within the hedge budget', p, 10, 30, { settled: false, live: 1, made: 1, maxAttempts: 3 }],
    ['beyond the hedge budget', p, 9, 30, { settled: false, live: 1, made: 1, maxAttempts: 3 }],
    ['the call answered', p, 10, 30, { settled: true, live: 1, made: 1, maxAttempts: 3 }],
    ['nothing out', p, 10, 30, { settled: false, live: 0, made: 1, maxAttempts: 3 }],
    ['attempts used up', p, 10, 30, { settled: false, live: 1, made: 3, maxAttempts: 3 }],
    ['the call\'s own delay, the route publishing none', { ...p, hedgeDelayMs: undefined }, 10, 12, { settled: false, live: 1, made: 1, maxAttempts: 3 }],
  ];
  const may_hedge = may.map(([name, policy, firsts, delay, s]) => {
    const b = new AgentCallBudget(T0);
    for (let i = 0; i < firsts; i++) b.first(T0);
    return { name, policy: toVector(policy), firsts, delay_ms: delay, settled: s.settled, live: s.live, made: s.made, max_attempts: s.maxAttempts, want: mayHedge({ ...s, now: T0 + 100 }, b, policy, delay) };
  });
  const shed = [
    [0, 0],
    [0.25, 0.1],
    [0.25, 0.25],
    [0.25, 0.9],
    [1, 0.999],
  ].map(([s, r]) => ({ shed: s!, random: r!, want: shedsCall({ ...AGENT_POLICY_DEFAULTS, shed: s! }, r!) }));
  return { hedge_delays, may_hedge, shed };
}

export function callVectors(): Record<string, unknown> {
  return { t0: T0, policies: policyVectors(), budgets: budgetVectors(), after_failure: afterFailureVectors(), ...hedgeVectors() };
}
