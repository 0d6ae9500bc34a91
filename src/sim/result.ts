/**
 * What a simulation run gives (./engine.ts): the callers' figures, per host,
 * per second, the route's state changes, and with calls under the call
 * policy (./calls.ts) what those did.
 */
import type { HostState } from '../../schemas/messages.ts';
import type { StrategyName } from '../../actors/strategies/index.ts';
import type { CallCounts } from './calls.ts';
import type { AgentPolicy } from '../../actors/agent-budget.ts';
import type { HostCall, SimHost } from './hosts.ts';

/** The callers' failed calls are also counted per this long of start time, ms. */
export const FINE_MS = 100;

/** The callers' calls, for a scenario with `call`. */
export interface CallResult extends CallCounts {
  /** Whether the callers kept the call policy. */
  policy: boolean;
  /** Latency of the requests (a request waits for all its `fanout` calls), ms. */
  requestLatency: { p50: number; p99: number; p999: number; max: number };
  failedRequests: number;
  /** The call policy the route published: the last one, the largest shedding share and the smallest retry budget over the run. */
  route: { last: AgentPolicy; maxShed: number; minRetryBudget: number };
  /** Per 1 s bucket of the logical call's start time: logical calls, and their attempts. */
  logicalPerBucket: number[];
  attemptsPerBucket: number[];
  /** Logical calls, and failed ones, per 100 ms bucket of their start time. */
  logicalPer100ms: number[];
  failedPer100ms: number[];
  /** The hosts' time in service over the run, ms (calls × their service time, up to the last answer). */
  hostWorkMs: number;
  /** Of it, the time spent on attempts whose caller had stopped waiting (hedges that lost, attempts past their timeout): until the abort on a host that stops, to the end on one that finishes. */
  wastedWorkMs: number;
}

export interface HostResult {
  label: string;
  key: string;
  picks: number;
  /** Share of all picks, %. */
  sharePct: number;
  /** Busy time over capacity time during the load, 0..1; null for a host without a capacity limit. */
  utilization: number | null;
  /** Mean calls in service during the load. */
  meanConcurrency: number;
  maxQueue: number;
  stateChanges: number;
}

export interface StateChange {
  t: number;
  host: string;
  from: HostState | 'none';
  to: HostState | 'none';
  reason: string;
}

export interface SimResult {
  scenario: string;
  strategy: StrategyName;
  seed: number;
  calls: number;
  ok: number;
  failed: number;
  /** Failed calls by cause. */
  timeouts: number;
  errors: number;
  noHost: number;
  successPct: number;
  /** Latency as the callers see it, ms (a timeout counts as the timeout, NO_HOST as 0). */
  latency: { mean: number; p50: number; p99: number; p999: number; max: number };
  hosts: HostResult[];
  /** Per 1 s bucket of call start time. */
  timeline: {
    bucketMs: number;
    /** picks[b][h]: picks of host h in bucket b. */
    picks: number[][];
    p50: number[];
    p99: number[];
    failed: number[];
  };
  stateChanges: StateChange[];
  /** When the load stopped, and when the last call was answered, ms. */
  loadEndMs: number;
  endMs: number;
  /** Events processed, route versions published. */
  events: number;
  versions: number;
  /** With the scenario's `call`: what the callers' calls did (then `calls`, `ok`, `failed` and the latencies count logical calls; `timeouts` and `errors` count attempts). */
  callStats?: CallResult;
}

/** Nearest-rank percentile of sorted values (p in 0..100). */
export function pct(sorted: Float64Array | number[], p: number): number {
  const n = sorted.length;
  if (n === 0) return Number.NaN;
  const rank = Math.max(1, Math.ceil((p / 100) * n));
  return sorted[Math.min(rank, n) - 1]!;
}

/** Per-host figures of a run: share of the picks, utilization and mean concurrency over the load (`loadMs`), longest queue, state changes. */
export function hostFigures(hosts: ReadonlyArray<SimHost<HostCall>>, picks: readonly number[], changesPerHost: readonly number[], loadMs: number): HostResult[] {
  const totalPicks = picks.reduce((x, y) => x + y, 0);
  return hosts.map((h, i) => ({
    label: h.label,
    key: h.key,
    picks: picks[i]!,
    sharePct: totalPicks > 0 ? (picks[i]! * 100) / totalPicks : 0,
    utilization: h.limited && h.capArea > 0 ? h.busyArea / h.capArea : null,
    meanConcurrency: h.busyArea / loadMs,
    maxQueue: h.maxQueue,
    stateChanges: changesPerHost[i]!,
  }));
}

/** p50 and p99 of each bucket's latencies. */
export function bucketPercentiles(buckets: readonly number[][]): { p50: number[]; p99: number[] } {
  const p50: number[] = [];
  const p99: number[] = [];
  for (const l of buckets) {
    const s = Float64Array.from(l).sort();
    p50.push(pct(s, 50));
    p99.push(pct(s, 99));
  }
  return { p50, p99 };
}
