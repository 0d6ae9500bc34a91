/**
 * A route's call policy, computed by its route actor from every caller's
 * reports over the sliding window (./call-window.ts) and published with the
 * route state: the retry budget (retries may add at most
 * retry_budget_percent of the route's first attempts, plus a floor of
 * retry_min_per_sec for the whole route), the hedge delay (hedge_percentile of
 * the route's measured latency, within hedge_min_delay_ms..hedge_max_delay_ms),
 * the hedge budget (hedge_budget_percent of the first attempts) and the
 * route's shedding share (the SRE book's client-side adaptive throttling over
 * the route's accept ratio over its last SHED_SLOTS seconds). Each agent
 * enforces its share locally.
 *
 * Pure: no I/O, no timers.
 */
import type { RouteState } from '../schemas/messages.ts';
import type { RouteParams } from './params.ts';
import { CallWindow, type WindowTotals } from './call-window.ts';

/** What a route publishes for its callers (the route state's optional call-policy fields). */
export interface CallPolicy {
  /** Retries an agent may add per first attempt over the window (`retry_budget`). */
  readonly retryBudget: number;
  /** Retries per second an agent may make whatever its first attempts (`retry_floor`). */
  readonly retryFloor: number;
  /** Hedge an idempotent call after this long without an answer, ms; undefined: too few latencies measured, no hedging (`hedge_delay_ms`). */
  readonly hedgeDelayMs: number | undefined;
  /** Hedges an agent may add per first attempt over the window (`hedge_budget`). */
  readonly hedgeBudget: number;
  /** The share of new calls agents refuse locally; 0: the route is not shedding (`shed`). */
  readonly shed: number;
}

/** Latencies the window needs before a hedge delay is published. */
export const MIN_HEDGE_SAMPLES = 20;
/**
 * Shedding is judged on the last this many one-second slots, not the whole
 * window: it must lift within a couple of seconds of the hosts recovering
 * (the SRE book's two minutes suit a client's own history, not a route that
 * sees every caller).
 */
export const SHED_SLOTS = 2;
/** The most a route sheds: a tenth of the calls still reach it, so that it sees its hosts recover. */
export const MAX_SHED = 0.9;
/** A published figure is renewed (a new route version) when it moved by more than this share. */
export const POLICY_CHANGE = 0.1;

/** The SRE book's client-side throttling: the share of new requests to refuse. K = 0 turns it off. */
export function sreThrottle(requests: number, accepts: number, k: number): number {
  if (k <= 0) return 0;
  return Math.max(0, (requests - k * accepts) / (requests + 1));
}

/**
 * The policy from the window's totals. Retries over the window may reach
 * B = ratio × firsts + floor × span; when the callers together retried more
 * than B (callers that enforce no budget, or a budget just lowered), every
 * agent's share shrinks by B / retries, so the route as a whole comes back
 * within B. The floor is shared evenly among the callers heard. Hedges alike,
 * without a floor.
 */
export function computePolicy(p: RouteParams, t: WindowTotals, hedgeDelayMs: number | undefined, recent: { requests: number; accepts: number } = { requests: t.firsts + t.retries + t.hedges, accepts: t.accepts }): CallPolicy {
  const ratio = p.retry_budget_percent / 100;
  const allowed = ratio * t.firsts + p.retry_min_per_sec * t.spanSec;
  const scale = t.retries > allowed ? allowed / t.retries : 1;
  const hratio = p.hedge_budget_percent / 100;
  const hallowed = hratio * t.firsts;
  const hscale = t.hedges > hallowed ? hallowed / t.hedges : 1;
  const shed = Math.min(MAX_SHED, sreThrottle(recent.requests, recent.accepts, p.shed_k));
  return {
    retryBudget: round(ratio * scale),
    retryFloor: round((p.retry_min_per_sec / t.callers) * scale),
    hedgeDelayMs: hratio > 0 && hedgeDelayMs !== undefined ? round(Math.min(p.hedge_max_delay_ms, Math.max(p.hedge_min_delay_ms, hedgeDelayMs))) : undefined,
    hedgeBudget: round(hratio * hscale),
    // a share under 1 % is noise, not shedding
    shed: shed < 0.01 ? 0 : Math.round(shed * 100) / 100,
  };
}

/** Three significant digits: what a route publishes, so that noise does not look like a change. */
function round(x: number): number {
  if (x === 0 || !Number.isFinite(x)) return 0;
  const d = 10 ** (2 - Math.floor(Math.log10(Math.abs(x))));
  return Math.round(x * d) / d;
}

function moved(a: number, b: number): boolean {
  if (a === b) return false;
  return Math.abs(a - b) > POLICY_CHANGE * Math.max(Math.abs(a), Math.abs(b));
}

/** Whether `next` is worth a new route version over `last`. */
export function policyChanged(last: CallPolicy | undefined, next: CallPolicy): boolean {
  if (last === undefined) return true;
  if ((last.shed > 0) !== (next.shed > 0) || (last.hedgeDelayMs === undefined) !== (next.hedgeDelayMs === undefined)) return true;
  return (
    moved(last.retryBudget, next.retryBudget) ||
    moved(last.retryFloor, next.retryFloor) ||
    moved(last.hedgeBudget, next.hedgeBudget) ||
    moved(last.shed, next.shed) ||
    (last.hedgeDelayMs !== undefined && next.hedgeDelayMs !== undefined && moved(last.hedgeDelayMs, next.hedgeDelayMs))
  );
}

/**
 * A route's call policy over time: its window, and the policy last
 * published. The route actor feeds it report batches; at most once a slot
 * (a second), a batch also has the policy judged again, and the route
 * publishes a new version when it changed enough. Only batches do: a route
 * whose callers are gone publishes nothing for its window draining (the next
 * batch brings it up to date), and no tick is needed for it.
 */
export class RouteCallPolicy {
  params: RouteParams;
  /** Made at the route's first batch: a route nobody calls holds none (about 1.5 KB a route). */
  private window: CallWindow | undefined = undefined;
  /** The policy as published (undefined: none yet, the route state carries no call-policy fields). */
  published: CallPolicy | undefined = undefined;
  /** The next time a batch has the policy judged, ms: the slot after the last judgement. */
  private nextUpdate = -Infinity;

  constructor(params: RouteParams) {
    this.params = params;
  }

  /** New parameters: a window of another length starts afresh; turned off, no policy is published. */
  configure(params: RouteParams): void {
    if (params.call_policy === 0) this.published = undefined;
    this.params = params;
    if (this.window !== undefined && (params.call_policy === 0 || Math.max(1, Math.ceil(params.call_window)) !== this.window.slots)) this.window = undefined;
  }

  private windowAt(now: number): CallWindow {
    return (this.window ??= new CallWindow(this.params.call_window, now));
  }

  /** One validated batch at `now`; true when the published policy changed (the route publishes a new version). */
  ingest(batch: Parameters<CallWindow['ingest']>[0], now: number): boolean {
    if (this.params.call_policy === 0) return false;
    this.windowAt(now).ingest(batch, now);
    return this.judge(now);
  }

  /**
   * A batch from `sender` begins at `now` (the report path's form of
   * `ingest`): the histogram its reports' latencies go into, or undefined
   * when the route has no call policy. Its reports are counted by `end`.
   */
  begin(sender: string, now: number): Uint32Array | undefined {
    return this.params.call_policy === 0 ? undefined : this.windowAt(now).begin(sender, now);
  }

  /** The batch begun at `now` ends with `accepts` of its reports accepted; true when the published policy changed. */
  end(batch: Parameters<CallWindow['ingest']>[0], accepts: number, now: number): boolean {
    this.window!.end(batch, accepts);
    return this.judge(now);
  }

  /** Judges the policy when its next judgement is due (at most once a second). */
  private judge(now: number): boolean {
    if (now < this.nextUpdate) return false;
    this.nextUpdate = this.window!.dueAt();
    return this.update(now);
  }

  /** The published policy as a checkpoint keeps it (see RouteCheckpoint.call_policy): `{}` when none. */
  save(): { call_policy?: number[] } {
    const p = this.published;
    return p === undefined ? {} : { call_policy: [p.retryBudget, p.retryFloor, p.hedgeDelayMs ?? -1, p.hedgeBudget, p.shed] };
  }

  /** Resumes what a checkpoint or a published state says was published (the window starts afresh). */
  restore(saved: readonly number[] | undefined, state: RouteState | undefined): void {
    if (this.params.call_policy === 0) return;
    if (saved !== undefined && saved.length === 5) {
      const [retryBudget, retryFloor, hedge, hedgeBudget, shed] = saved as [number, number, number, number, number];
      this.published = { retryBudget, retryFloor, hedgeDelayMs: hedge < 0 ? undefined : hedge, hedgeBudget, shed };
    } else if (state?.retry_budget !== undefined) {
      this.published = {
        retryBudget: state.retry_budget,
        retryFloor: state.retry_floor ?? 0,
        hedgeDelayMs: state.hedge_delay_ms,
        hedgeBudget: state.hedge_budget ?? 0,
        shed: state.shed ?? 0,
      };
    }
  }

  /** The policy the window gives at `now`. */
  current(now: number): CallPolicy {
    const w = this.windowAt(now);
    return computePolicy(this.params, w.totals(now), w.percentile(this.params.hedge_percentile, MIN_HEDGE_SAMPLES), w.recent(SHED_SLOTS, now));
  }

  /** Judges the policy at `now`; true when the published one changed. */
  update(now: number): boolean {
    const next = this.current(now);
    if (!policyChanged(this.published, next)) return false;
    this.published = next;
    return true;
  }
}
