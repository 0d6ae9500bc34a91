import { expect } from 'chai';
import { CallWindow, HISTOGRAM_BUCKETS, SLOT_MS, bucketUpperMs, latencyBucket } from '../../actors/call-window.ts';
import { MAX_SHED, MIN_SHED_REQUESTS, RouteCallPolicy, computePolicy, policyChanged, sreThrottle, type CallPolicy } from '../../actors/call-policy.ts';
import { DEFAULT_PARAMS, resolveParams, type RouteParams } from '../../actors/params.ts';
import { RouteActor, parseCheckpoint } from '../../actors/route.ts';
import { AttemptKind, CallRetcode } from '../../schemas/contract.ts';
import { validateReportBatch, validateRouteState, type AttemptTuple, type ReportBatch } from '../../schemas/messages.ts';
import { entry } from '../helpers/route-entry.ts';

const T0 = 1_700_000_000_000;

/** A batch of `n` calls from `sender`: `fail` of them failed, the last `retries` marked as retries and the `hedges` before them as hedges. */
function batch(sender: string, n: number, opts: { fail?: number; retries?: number; hedges?: number; latency?: number } = {}): ReportBatch {
  const reports: ReportBatch['reports'] = [];
  for (let i = 0; i < n; i++) reports.push([0, i < (opts.fail ?? 0) ? 1 : 0, opts.latency ?? 5, 0]);
  const attempts: AttemptTuple[] = [];
  const r = opts.retries ?? 0;
  const h = opts.hedges ?? 0;
  for (let i = 0; i < r; i++) attempts.push([n - 1 - i, 2, AttemptKind.retry]);
  for (let i = 0; i < h; i++) attempts.push([n - 1 - r - i, 2, AttemptKind.hedge]);
  const b: ReportBatch = { v: 1, sender, modid: 1, cmdid: 2, ts: T0, hosts: [['10.0.0.1', 8000]], reports };
  if (attempts.length > 0) b.attempts = attempts;
  return b;
}

function params(overrides: Record<string, number> = {}): RouteParams {
  const r = resolveParams('default', overrides);
  if (!r.ok) throw new Error(r.error);
  return r.params;
}

describe('call window - sliding counts of every caller', () => {
  it('call window - counts first attempts, retries, hedges and accepts from the attempt marks', () => {
    const w = new CallWindow(10, T0);
    w.ingest(batch('a', 10, { fail: 4, retries: 2, hedges: 1 }), T0);
    w.ingest(batch('b', 5), T0 + 10);
    const t = w.totals(T0 + 20);
    expect(t).to.include({ firsts: 12, retries: 2, hedges: 1, accepts: 11, callers: 2 });
  });

  it('call window - slots older than the window drop out, second by second', () => {
    const w = new CallWindow(3, T0);
    w.ingest(batch('a', 10), T0);
    w.ingest(batch('a', 20), T0 + SLOT_MS);
    expect(w.totals(T0 + 2 * SLOT_MS).firsts).to.equal(30);
    expect(w.totals(T0 + 3 * SLOT_MS).firsts, 'the first slot has left the 3 s window').to.equal(20);
    expect(w.totals(T0 + 4 * SLOT_MS).firsts).to.equal(0);
    expect(w.calls).to.equal(0);
  });

  it('call window - a long quiet spell empties the window and its callers in one step', () => {
    const w = new CallWindow(10, T0);
    w.ingest(batch('a', 100, { latency: 3 }), T0);
    const t = w.totals(T0 + 3_600_000);
    expect(t).to.include({ firsts: 0, retries: 0, callers: 1 });
    expect(w.percentile(50, 1)).to.equal(undefined);
  });

  it('call window - its span grows to the window length, so a young route gets a floor for the time it has', () => {
    const w = new CallWindow(10, T0);
    expect(w.totals(T0).spanSec).to.equal(1);
    expect(w.totals(T0 + 4_500).spanSec).to.equal(4.5);
    expect(w.totals(T0 + 60_000).spanSec).to.equal(10);
  });

  it('call window - the latency percentile is the bucket bound just above the true value, within 25 %', () => {
    const w = new CallWindow(10, T0);
    const b = batch('a', 100);
    // latencies 1..100 ms: p95 = 95 ms
    b.reports.forEach((r, i) => (r[2] = i + 1));
    w.ingest(b, T0);
    const p95 = w.percentile(95, 20)!;
    expect(p95).to.be.above(95).and.at.most(95 * 1.25);
    expect(w.percentile(95, 101), 'too few samples').to.equal(undefined);
    for (const ms of [0, 0.01, 0.05, 0.5, 1, 7.3, 1000, 3_600_000]) {
      const b = latencyBucket(ms);
      expect(b, `${ms} ms`).to.be.within(0, HISTOGRAM_BUCKETS - 1);
      expect(bucketUpperMs(b), `${ms} ms`).to.be.above(ms).and.at.most(Math.max(ms * 1.25, 4 / 64));
      if (b > 0) expect(bucketUpperMs(b - 1), `${ms} ms: the bucket below ends at or under it`).to.be.at.most(ms);
    }
  });
});

describe('call policy - budgets from every caller', () => {
  const totals = { firsts: 1000, retries: 0, hedges: 0, accepts: 1000, spanSec: 10, callers: 3 };

  it('call policy - retries may add retry_budget_percent of first attempts, and the floor is shared among the callers', () => {
    const p = computePolicy(DEFAULT_PARAMS, totals, 12);
    expect(p.retryBudget).to.equal(DEFAULT_PARAMS.retry_budget_percent / 100);
    expect(p.retryFloor).to.equal(1);
    expect(p.hedgeBudget).to.equal(DEFAULT_PARAMS.hedge_budget_percent / 100);
    expect(p.hedgeDelayMs).to.equal(12);
    expect(p.shed).to.equal(0);
  });

  it('call policy - callers retrying past the route budget shrink every share by budget / retries', () => {
    // budget: 0.1 × 1000 + 3 × 10 = 130 retries; 260 were made
    const p = computePolicy(DEFAULT_PARAMS, { ...totals, retries: 260, hedges: 100 }, 12);
    expect(p.retryBudget).to.equal(0.05);
    expect(p.retryFloor).to.equal(0.5);
    expect(p.hedgeBudget).to.equal(0.025);
  });

  it('call policy - the hedge delay is bounded by hedge_min_delay_ms and hedge_max_delay_ms; none without a measure or a budget', () => {
    expect(computePolicy(DEFAULT_PARAMS, totals, 0.2).hedgeDelayMs).to.equal(DEFAULT_PARAMS.hedge_min_delay_ms);
    expect(computePolicy(DEFAULT_PARAMS, totals, 5000).hedgeDelayMs).to.equal(DEFAULT_PARAMS.hedge_max_delay_ms);
    expect(computePolicy(DEFAULT_PARAMS, totals, undefined).hedgeDelayMs).to.equal(undefined);
    expect(computePolicy(params({ hedge_budget_percent: 0 }), totals, 10).hedgeDelayMs).to.equal(undefined);
  });

  it('call policy - the SRE throttle: nothing while half the calls are accepted, then max(0, (requests − K·accepts)/(requests + 1)), capped', () => {
    expect(sreThrottle(100, 50, 2)).to.equal(0);
    expect(sreThrottle(100, 20, 2)).to.be.closeTo(60 / 101, 1e-12);
    expect(sreThrottle(100, 0, 0), 'K = 0: off').to.equal(0);
    expect(computePolicy(DEFAULT_PARAMS, { ...totals, accepts: 200 }, 5).shed).to.equal(0.6);
    expect(computePolicy(DEFAULT_PARAMS, { ...totals, accepts: 0 }, 5).shed).to.equal(MAX_SHED);
  });

  it('call policy - no shedding on fewer than MIN_SHED_REQUESTS recent calls, however many failed', () => {
    const few = { requests: MIN_SHED_REQUESTS - 1, accepts: 0 };
    expect(computePolicy(DEFAULT_PARAMS, totals, 5, few).shed).to.equal(0);
    expect(computePolicy(DEFAULT_PARAMS, totals, 5, { requests: MIN_SHED_REQUESTS, accepts: 0 }).shed).to.equal(Math.min(MAX_SHED, Math.round((MIN_SHED_REQUESTS / (MIN_SHED_REQUESTS + 1)) * 100) / 100));
  });

  it('call policy - a change under 10 % is not worth a route version; shedding starting or ending always is', () => {
    const a: CallPolicy = { retryBudget: 0.1, retryFloor: 1, hedgeDelayMs: 10, hedgeBudget: 0.05, shed: 0 };
    expect(policyChanged(undefined, a)).to.equal(true);
    expect(policyChanged(a, { ...a, hedgeDelayMs: 10.9 })).to.equal(false);
    expect(policyChanged(a, { ...a, hedgeDelayMs: 12 })).to.equal(true);
    expect(policyChanged(a, { ...a, shed: 0.01 })).to.equal(true);
    expect(policyChanged(a, { ...a, hedgeDelayMs: undefined })).to.equal(true);
    expect(policyChanged(a, { ...a, retryFloor: 0.95 })).to.equal(false);
  });

  it('call policy - judged at the first batch, then at most once a second by a batch; shedding engages and lifts within seconds', () => {
    const rp = new RouteCallPolicy(DEFAULT_PARAMS);
    expect(rp.published).to.equal(undefined);
    expect(rp.ingest(batch('a', 100, { fail: 100 }), T0 + SLOT_MS)).to.equal(true);
    expect(rp.published!.shed).to.equal(MAX_SHED);
    // the hosts recover: successes only, second by second
    let t = T0 + SLOT_MS;
    expect(rp.ingest(batch('a', 100), t + 500), 'the same second: not judged again').to.equal(false);
    expect(rp.published!.shed).to.equal(MAX_SHED);
    while (rp.published!.shed > 0 && t < T0 + 60_000) {
      t += SLOT_MS;
      rp.ingest(batch('a', 100), t);
    }
    expect(rp.published!.shed).to.equal(0);
    expect(t - T0, 'lifted once the last 2 s accepted half the calls').to.be.at.most(2 * SLOT_MS);
  });
});

describe('route actor - call policy published with the route state', () => {
  it('route - a called route publishes its budgets, hedge delay and shedding in a state the contract accepts; ticks alone publish nothing for them', () => {
    const r = new RouteActor({ modid: 1, cmdid: 2, nodeId: 'n1', entry: entry(3, 'default'), now: T0 });
    const first = r.flush(T0)!.state;
    expect(first.retry_budget, 'no policy before any call').to.equal(undefined);
    r.tick(T0 + 100);
    expect(r.flush(T0 + 100), 'no calls: no new version').to.equal(undefined);
    const b = batch('agent-1', 50, { retries: 2 });
    b.reports.forEach((x, i) => (x[2] = 1 + i / 10));
    expect(validateReportBatch(b).ok).to.equal(true);
    r.ingest(b, T0 + 200);
    const s = r.flush(T0 + 200)!.state;
    expect(s).to.include({ retry_budget: 0.1, retry_floor: 3, hedge_budget: 0.05, shed: 0 });
    expect(s.hedge_delay_ms, 'p99 of 1.0..5.9 ms is 5.9 ms, within one bucket above').to.be.within(5.9, 5.9 * 1.25);
    expect(validateRouteState(s).ok).to.equal(true);
    // the same figures a second later: no new version; nor from ticks while nobody calls
    r.ingest(b, T0 + SLOT_MS + 100);
    expect(r.flush(T0 + SLOT_MS + 100)).to.equal(undefined);
    for (let t = T0 + 2 * SLOT_MS; t < T0 + 30 * SLOT_MS; t += 100) r.tick(t);
    expect(r.flush(T0 + 30 * SLOT_MS)).to.equal(undefined);
  });

  it('route - call_policy 0: no call-policy fields, and a policy published before is dropped from the next state', () => {
    const off = new RouteActor({ modid: 1, cmdid: 2, nodeId: 'n1', entry: entry(3, 'default', { call_policy: 0 }), now: T0 });
    off.flush(T0);
    off.ingest(batch('a', 50), T0 + 200);
    expect(off.flush(T0 + 200), 'nothing to publish').to.equal(undefined);
    const on = new RouteActor({ modid: 1, cmdid: 2, nodeId: 'n1', entry: entry(3, 'default'), now: T0 });
    on.flush(T0);
    on.ingest(batch('a', 50), T0 + 200);
    expect(on.flush(T0 + 200)!.state.retry_budget).to.equal(0.1);
    on.applyRegistry(entry(3, 'default', { call_policy: 0 }), T0 + SLOT_MS + 1);
    const s = on.flush(T0 + SLOT_MS + 1)!.state;
    for (const k of ['retry_budget', 'retry_floor', 'hedge_delay_ms', 'hedge_budget', 'shed']) expect(s, k).to.not.have.property(k);
  });

  it('route - a host refusing calls as overloaded (retcode -4) is not ejected, and the refusals make the route shed', () => {
    const r = new RouteActor({ modid: 1, cmdid: 2, nodeId: 'n1', entry: entry(3, 'default'), now: T0 });
    r.flush(T0);
    const b = batch('a', 100);
    b.reports.forEach((x) => (x[1] = CallRetcode.overloaded));
    r.ingest(b, T0 + 100);
    expect(r.host('10.0.0.1:8000')!.state).to.equal('healthy');
    expect(r.flush(T0 + 100)!.state.shed).to.equal(MAX_SHED);
    // any other error code ejects as before
    const e = batch('a', 100);
    e.reports.forEach((x) => (x[1] = -5));
    r.ingest(e, T0 + 200);
    expect(r.host('10.0.0.1:8000')!.state).to.equal('overloaded');
    // the lars profile keeps Lars' rule: every non-zero retcode is an error
    const l = new RouteActor({ modid: 1, cmdid: 2, nodeId: 'n1', entry: entry(3, 'lars'), now: T0 });
    l.ingest(b, T0 + 100);
    expect(l.host('10.0.0.1:8000')!.state).to.equal('overloaded');
  });

  it('route - a route taken over (checkpoint or published state) goes on from the policy published: no version for the same figures', () => {
    const r = new RouteActor({ modid: 1, cmdid: 2, nodeId: 'n1', entry: entry(3, 'default'), now: T0 });
    r.flush(T0);
    const b = batch('a', 50);
    r.ingest(b, T0 + 200);
    const published = r.flush(T0 + 200)!.state;
    const cp = parseCheckpoint(JSON.parse(JSON.stringify(r.checkpoint(T0 + 300))) as unknown);
    expect(cp.ok).to.equal(true);
    if (!cp.ok) return;
    expect(cp.value.call_policy).to.have.length(5);
    const fromCheckpoint = new RouteActor({ modid: 1, cmdid: 2, nodeId: 'n2', entry: entry(3, 'default'), now: T0 + 300, checkpoint: cp.value });
    const fromState = new RouteActor({ modid: 1, cmdid: 2, nodeId: 'n2', entry: entry(3, 'default'), now: T0 + 300, restored: published });
    fromState.flush(T0 + 300);
    for (const x of [fromCheckpoint, fromState]) {
      expect(x.calls.published).to.deep.equal(r.calls.published);
      x.ingest(b, T0 + 400);
      expect(x.flush(T0 + 400), 'the same figures: nothing new').to.equal(undefined);
    }
    expect(parseCheckpoint({ ...cp.value, call_policy: [1, 2] })).to.deep.equal({ ok: false, error: 'call_policy must be 5 numbers' });
  });

  it('route - an attempt mark past the batch\'s reports is refused by the contract', () => {
    const b = batch('a', 2);
    b.attempts = [[2, 2, AttemptKind.retry]];
    const v = validateReportBatch(b);
    expect(v.ok).to.equal(false);
    expect(!v.ok && v.kind).to.equal('out_of_range');
    b.attempts = [[1, 2, 3 as never]];
    expect(validateReportBatch(b).ok).to.equal(false);
  });
});
