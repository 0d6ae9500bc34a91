import { expect } from 'chai';
import { AgentCallBudget, AGENT_POLICY_DEFAULTS, policyOf, type AgentPolicy } from '../../actors/agent-budget.ts';
import type { PickedHost } from '../../actors/agent-route.ts';
import { AttemptKind } from '../../schemas/contract.ts';
import { CallError, CallStop, newCallCounters, runCall, type CallDeps, type CallTimers } from '../../src/agent/call.ts';
import type { AttemptMark } from '../../src/agent/report-batcher.ts';
import type { RouteState } from '../../schemas/messages.ts';

/** Manual timers: tests advance time instead of sleeping; callbacks run in time order with promise jobs settled between them. */
class ManualTimers implements CallTimers {
  t = 1_700_000_000_000;
  private seq = 0;
  private q: Array<{ at: number; fn: () => void; id: number }> = [];
  now = (): number => this.t;
  set(fn: () => void, ms: number): unknown {
    const id = ++this.seq;
    this.q.push({ at: this.t + ms, fn, id });
    return id;
  }
  clear(h: unknown): void {
    this.q = this.q.filter((e) => e.id !== h);
  }
  async advance(ms: number): Promise<void> {
    const end = this.t + ms;
    await settle();
    for (;;) {
      this.q.sort((a, b) => a.at - b.at || a.id - b.id);
      const e = this.q[0];
      if (e === undefined || e.at > end) break;
      this.q.shift();
      this.t = e.at;
      e.fn();
      await settle();
    }
    this.t = end;
    await settle();
  }
}

/** Lets every pending promise job run (one event-loop turn). */
const settle = (): Promise<void> => new Promise((r) => setImmediate(r));

interface Reported {
  host: string;
  retcode: number;
  latencyMs: number;
  mark: AttemptMark | undefined;
}

function deps(hosts: string[], policy: AgentPolicy, timers: ManualTimers, random = 0.5): CallDeps & { reports: Reported[]; released: string[] } {
  const picks = hosts.map((h): PickedHost => ({ ok: true, ip: h.split(':')[0]!, port: Number(h.split(':')[1]) }));
  let i = 0;
  const reports: Reported[] = [];
  const released: string[] = [];
  return {
    reports,
    released,
    counters: newCallCounters(),
    pick: () => (picks.length === 0 ? undefined : picks[i++ % picks.length]),
    release: (h) => released.push(`${h.ip}:${h.port}`),
    report: (h, retcode, latencyMs, mark) => reports.push({ host: `${h.ip}:${h.port}`, retcode, latencyMs, mark }),
    policy: () => policy,
    budget: new AgentCallBudget(timers.now()),
    timers,
    random: () => random,
    timeoutMs: 1000,
  };
}

const HOSTS = ['10.0.0.1:80', '10.0.0.2:80', '10.0.0.3:80'];
const refused = (): Error => Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' });
const POLICY: AgentPolicy = { retryBudget: 0.1, retryFloor: 1, hedgeDelayMs: 20, hedgeBudget: 0.05, shed: 0 };

async function rejection(p: Promise<unknown>): Promise<CallError> {
  try {
    await p;
  } catch (err) {
    expect(err).to.be.instanceOf(CallError);
    return err as CallError;
  }
  throw new Error('the call did not fail');
}

describe('agent call - retries within the budget, hedges, deadlines', () => {
  it('call - a connection error is retried on a different host; the retry is reported with its attempt mark', async () => {
    const timers = new ManualTimers();
    const d = deps(HOSTS, POLICY, timers);
    const seen: string[] = [];
    const v = await runCall(1, 2, d, async (h, _signal, info) => {
      seen.push(`${h.ip}:${info.attempt}:${info.kind}`);
      if (h.ip === '10.0.0.1') throw refused();
      return 'answer';
    });
    expect(v).to.equal('answer');
    expect(seen).to.deep.equal(['10.0.0.1:1:first', '10.0.0.2:2:retry']);
    expect(d.reports).to.deep.equal([
      { host: '10.0.0.1:80', retcode: -2, latencyMs: 0, mark: undefined },
      { host: '10.0.0.2:80', retcode: 0, latencyMs: 0, mark: { attempt: 2, kind: AttemptKind.retry } },
    ]);
  });

  it('call - when every host fails, retries stay within the budget: attempts ≤ firsts × (1 + retry_budget) + floor × window', async () => {
    const timers = new ManualTimers();
    const d = deps(HOSTS, POLICY, timers);
    let attempts = 0;
    const reasons = new Map<string, number>();
    for (let i = 0; i < 200; i++) {
      const e = await rejection(
        runCall(1, 2, d, async () => {
          attempts++;
          throw refused();
        }),
      );
      reasons.set(e.reason, (reasons.get(e.reason) ?? 0) + 1);
      await timers.advance(25);
    }
    // 200 calls over 5 s: at most 0.1 × 200 + 1 × 5 retries
    expect(attempts).to.be.at.most(200 + 20 + 5);
    expect(attempts, 'retries were made while the budget allowed').to.be.at.least(210);
    expect(reasons.get(CallStop.budget)).to.be.at.least(170);
    expect(d.counters.stops.budget).to.equal(reasons.get(CallStop.budget));
    expect(d.counters.first + d.counters.retry).to.equal(attempts);
    const e = await rejection(runCall(1, 2, d, () => Promise.reject(refused())));
    expect(e.attempts[0]).to.include({ attempt: 1, kind: 'first', host: e.attempts[0]!.host, outcome: 'error', retcode: -2 });
    expect(e.code).to.equal('LARS_CALL_FAILED');
  });

  it('call - without a budget limit the same outage costs maxAttempts attempts per call', async () => {
    const timers = new ManualTimers();
    const d = deps(HOSTS, { ...POLICY, retryBudget: 10, retryFloor: 1000 }, timers);
    let attempts = 0;
    for (let i = 0; i < 50; i++) {
      const e = await rejection(
        runCall(1, 2, d, async () => {
          attempts++;
          throw refused();
        }),
      );
      expect(e.reason).to.equal(CallStop.attempts);
    }
    expect(attempts).to.equal(150);
  });

  it('call - an idempotent call is hedged after the hedge delay; the first answer wins and the loser is aborted and not reported', async () => {
    const timers = new ManualTimers();
    const d = deps(HOSTS, POLICY, timers);
    // the budget allows a hedge once 20 first attempts were made
    for (let i = 0; i < 40; i++) d.budget.first(timers.now());
    let loserAborted: unknown;
    const p = runCall(
      1,
      2,
      d,
      (h, signal) =>
        new Promise<string>((resolve) => {
          if (h.ip === '10.0.0.1') signal.addEventListener('abort', () => (loserAborted = signal.reason as unknown));
          else timers.set(() => resolve(`from ${h.ip}`), 5);
        }),
      { idempotent: true },
    );
    await timers.advance(19);
    expect(d.reports).to.have.length(0);
    await timers.advance(10);
    expect(await p).to.equal('from 10.0.0.2');
    expect(loserAborted).to.be.instanceOf(Error);
    expect(d.reports).to.deep.equal([{ host: '10.0.0.2:80', retcode: 0, latencyMs: 5, mark: { attempt: 2, kind: AttemptKind.hedge } }]);
    expect(d.released).to.deep.equal(['10.0.0.1:80']);
  });

  it('call - a call that is not idempotent is never hedged', async () => {
    const timers = new ManualTimers();
    const d = deps(HOSTS, POLICY, timers);
    for (let i = 0; i < 40; i++) d.budget.first(timers.now());
    const hosts: string[] = [];
    const p = runCall(1, 2, d, (h) => {
      hosts.push(h.ip);
      return new Promise<string>((resolve) => timers.set(() => resolve('late'), 500));
    });
    await timers.advance(600);
    expect(await p).to.equal('late');
    expect(hosts).to.deep.equal(['10.0.0.1']);
  });

  it('call - the deadline ends the call: attempts out are aborted and reported as timeouts', async () => {
    const timers = new ManualTimers();
    const d = deps(HOSTS, POLICY, timers);
    let aborted = 0;
    const p = rejection(
      runCall(1, 2, d, (_h, signal) => new Promise<never>(() => signal.addEventListener('abort', () => aborted++)), { deadlineMs: 300, attemptTimeoutMs: 200 }),
    );
    await timers.advance(1000);
    const e = await p;
    expect(e.reason).to.equal(CallStop.deadline);
    expect(e.attempts.map((a) => [a.kind, a.outcome, a.latencyMs])).to.deep.equal([
      ['first', 'timeout', 200],
      ['retry', 'timeout', 100],
    ]);
    expect(aborted).to.equal(2);
    expect(d.reports.map((r) => r.retcode)).to.deep.equal([-1, -1]);
  });

  it('call - while the route sheds, a share of calls fails fast with no attempt', async () => {
    const timers = new ManualTimers();
    let called = 0;
    const shedding = { ...POLICY, shed: 0.6 };
    const e = await rejection(runCall(1, 2, deps(HOSTS, shedding, timers, 0.5), async () => called++));
    expect(e.reason).to.equal(CallStop.shed);
    expect(e.attempts).to.have.length(0);
    expect(await runCall(1, 2, deps(HOSTS, shedding, timers, 0.7), async () => ++called)).to.equal(1);
  });

  it('call - a failure the caller does not retry ends the call; with one host, no other host to retry on', async () => {
    const timers = new ManualTimers();
    const e1 = await rejection(runCall(1, 2, deps(HOSTS, POLICY, timers), () => Promise.reject(new Error('bad request'))));
    expect(e1.reason).to.equal(CallStop.notRetriable);
    expect(e1.attempts).to.have.length(1);
    expect(e1.attempts[0]!.retcode).to.equal(-5);
    const e2 = await rejection(runCall(1, 2, deps(['10.0.0.9:80'], POLICY, timers), () => Promise.reject(refused())));
    expect(e2.reason).to.equal(CallStop.noHost);
    const e3 = await rejection(runCall(1, 2, deps([], POLICY, timers), async () => 1));
    expect(e3.reason).to.equal(CallStop.noHost);
  });

  it("call - the caller's signal aborts the call and the attempt in flight", async () => {
    const timers = new ManualTimers();
    const ctl = new AbortController();
    let aborted = false;
    const p = rejection(runCall(1, 2, deps(HOSTS, POLICY, timers), (_h, s) => new Promise<never>(() => s.addEventListener('abort', () => (aborted = true))), { signal: ctl.signal }));
    await timers.advance(10);
    ctl.abort();
    const e = await p;
    expect(e.reason).to.equal(CallStop.aborted);
    expect(aborted).to.equal(true);
  });

  it('agent budget - a route state without call-policy fields gives the defaults; one with them, its figures', () => {
    expect(policyOf(undefined)).to.equal(AGENT_POLICY_DEFAULTS);
    const s: RouteState = { v: 1, sender: 'n', modid: 1, cmdid: 2, version: 3, ts: 0, profile: 'default', panic: false, removed: false, probe_num: 10, hosts: [] };
    expect(policyOf({ ...s })).to.equal(AGENT_POLICY_DEFAULTS);
    expect(policyOf({ ...s, retry_budget: 0.05, retry_floor: 0.5, hedge_delay_ms: 7, hedge_budget: 0.01, shed: 0.3 })).to.deep.equal({
      retryBudget: 0.05,
      retryFloor: 0.5,
      hedgeDelayMs: 7,
      hedgeBudget: 0.01,
      shed: 0.3,
    });
  });
});
