import { expect } from 'chai';
import { AgentCallBudget, AGENT_POLICY_DEFAULTS, type AgentPolicy } from '../../actors/agent-budget.ts';
import { AfterFailure, afterFailure, hedgeDelay, mayHedge, shedsCall } from '../../actors/call-decide.ts';

const base = { retriable: true, live: 0, made: 1, maxAttempts: 3, now: 1000, deadline: 3000 };
const noFloor: AgentPolicy = { ...AGENT_POLICY_DEFAULTS, retryFloor: 0, retryBudget: 0.5 };

describe('call decisions', () => {
  it('call decide - after a failure: wait for an attempt still out, else stop on not retriable, attempts, deadline or budget, else retry', () => {
    const b = new AgentCallBudget(0);
    b.first(0);
    b.first(0);
    expect(afterFailure({ ...base, live: 1 }, b, noFloor)).to.equal(AfterFailure.wait);
    expect(afterFailure({ ...base, retriable: false, live: 1 }, b, noFloor)).to.equal(AfterFailure.wait);
    expect(afterFailure({ ...base, retriable: false }, b, noFloor)).to.equal(AfterFailure.notRetriable);
    expect(afterFailure({ ...base, made: 3 }, b, noFloor)).to.equal(AfterFailure.attempts);
    expect(afterFailure({ ...base, now: 3000 }, b, noFloor)).to.equal(AfterFailure.deadline);
    // two first attempts at 50 %: one retry fits, the second does not
    expect(afterFailure(base, b, noFloor)).to.equal(AfterFailure.retry);
    expect(b.totals(1000).retries).to.equal(1);
    expect(afterFailure(base, b, noFloor)).to.equal(AfterFailure.budget);
    expect(b.totals(1000).retries).to.equal(1);
  });

  it('call decide - a call is hedged only when idempotent, not turned off, with a delay and more than one attempt', () => {
    const p: AgentPolicy = { ...AGENT_POLICY_DEFAULTS, hedgeDelayMs: 12 };
    expect(hedgeDelay(p, { idempotent: true, maxAttempts: 3 })).to.equal(12);
    expect(hedgeDelay(p, { idempotent: true, maxAttempts: 3, hedgeDelayMs: 5 })).to.equal(5);
    expect(hedgeDelay(AGENT_POLICY_DEFAULTS, { idempotent: true, maxAttempts: 3 })).to.equal(undefined);
    expect(hedgeDelay(AGENT_POLICY_DEFAULTS, { idempotent: true, maxAttempts: 3, hedgeDelayMs: 5 })).to.equal(5);
    expect(hedgeDelay(p, { idempotent: false, maxAttempts: 3 })).to.equal(undefined);
    expect(hedgeDelay(p, { idempotent: true, hedge: false, maxAttempts: 3 })).to.equal(undefined);
    expect(hedgeDelay(p, { idempotent: true, maxAttempts: 1 })).to.equal(undefined);
  });

  it('call decide - a hedge goes only while the call is unanswered with an attempt out and attempts left, within the hedge budget', () => {
    const p: AgentPolicy = { ...AGENT_POLICY_DEFAULTS, hedgeDelayMs: 10, hedgeBudget: 0.5 };
    const b = new AgentCallBudget(0);
    b.first(0);
    b.first(0);
    const s = { settled: false, live: 1, made: 1, maxAttempts: 2, now: 10 };
    expect(mayHedge({ ...s, settled: true }, b, p, 10)).to.equal(false);
    expect(mayHedge({ ...s, live: 0 }, b, p, 10)).to.equal(false);
    expect(mayHedge({ ...s, made: 2 }, b, p, 10)).to.equal(false);
    expect(mayHedge(s, b, p, 10)).to.equal(true);
    expect(mayHedge(s, b, p, 10)).to.equal(false); // one hedge per two first attempts
    // a call's own delay hedges where the route publishes none
    const c = new AgentCallBudget(0);
    c.first(0);
    c.first(0);
    expect(mayHedge(s, c, { ...p, hedgeDelayMs: undefined }, 5)).to.equal(true);
  });

  it('call decide - a route that sheds refuses that share of new calls', () => {
    expect(shedsCall({ ...AGENT_POLICY_DEFAULTS, shed: 0.3 }, 0.29)).to.equal(true);
    expect(shedsCall({ ...AGENT_POLICY_DEFAULTS, shed: 0.3 }, 0.3)).to.equal(false);
    expect(shedsCall(AGENT_POLICY_DEFAULTS, 0)).to.equal(false);
  });
});
