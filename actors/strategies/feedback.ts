/**
 * The agent's local feedback to its pick strategy, one pure function pair
 * used by the agent SDK (src/agent/agent.ts) and the simulator
 * (src/sim/engine.ts) alike:
 *
 * - a pick adds a call in flight to the host (and its start time to the
 *   host's sum of start times, so the mean age of the calls in flight is known);
 * - a report removes it and moves the host's latency estimate, a peak EWMA
 *   (Finagle's and Linkerd's): a sample above the estimate replaces it at
 *   once, a faster one pulls it down with weight 1 − e^(−Δt/decayMs), Δt the
 *   time since the previous sample. A failed call counts as at least the
 *   caller's timeout, so a host that fails fast looks slow, not fast; a call
 *   the caller gave up on at the timeout counts as twice its latency, as it
 *   counted while in flight (`AGE_FACTOR`).
 *
 * Time comes in as `now` (ms): a number, or a clock that is read only when
 * the answer depends on the time (`Now`). Nothing here reads a clock of its own.
 */
import { LIMITS } from '../../schemas/messages.ts';
import { StrategyName, type PickableHost, type Strategy } from './types.ts';

export interface FeedbackOptions {
  /** A failed call counts as a sample of at least this many ms (the caller's timeout). */
  readonly timeoutMs: number;
  /** Time constant of the estimate's decay toward faster samples, ms. */
  readonly decayMs: number;
}

export const FEEDBACK_DEFAULTS: FeedbackOptions = { timeoutMs: 1000, decayMs: 10_000 };

/**
 * A call in flight (or given up on at the timeout) for `age` ms tells that
 * the host takes about AGE_FACTOR × `age`: twice the mean age of the calls in
 * flight is about the age of the oldest one (`latencyAt`), and a call given
 * up on counts as twice its latency (`noteReport`).
 */
export const AGE_FACTOR = 2;

/**
 * The time, ms: a number, or a clock read only when the answer depends on it.
 * Reading a clock costs more than a pick itself on some machines (tens of ns),
 * and most picks of a strategy that does not weigh load need no time at all.
 */
export type Now = number | (() => number);

function timeOf(now: Now): number {
  return typeof now === 'number' ? now : now();
}

/**
 * The calls in flight on `h` that count at `now`: none when the host has
 * shown no sign of life (a report, or a pick while it had nothing in flight)
 * for longer than `timeoutMs` while calls were in flight. Those calls are
 * taken as never reported (a caller that picked and did not report, or
 * crashed): without this, one lost report would keep a host looking busy,
 * and an in-flight-aware strategy would avoid it for good.
 */
export function liveInflight(h: PickableHost, now: number, timeoutMs: number): number {
  const n = h.inflight;
  if (n === 0) return 0;
  const life = h.lifeTs;
  return life !== undefined && now - life > timeoutMs ? 0 : n;
}

/**
 * A call was picked on `h` at `now`. With `ages` false (a strategy that does
 * not weigh load: its entry's `weighsLoad` in strategies/index.ts), a pick on
 * a host that is not probing and already has calls in flight only counts the
 * call: no clock is read, and the sum of pick times is left behind (nothing
 * reads it for such a strategy; an age it would give is beyond any timeout,
 * so `latencyAt` ignores it).
 */
export function notePick(h: PickableHost, now: Now, opts: FeedbackOptions = FEEDBACK_DEFAULTS, ages = true): void {
  if (!ages && h.inflight > 0 && h.state !== 'probing') {
    h.inflight++;
    return;
  }
  const t = timeOf(now);
  if (liveInflight(h, t, opts.timeoutMs) === 0) {
    h.inflight = 0;
    h.pendingSum = 0;
    h.lifeTs = t;
  }
  h.inflight++;
  h.pendingSum = (h.pendingSum ?? 0) + t;
}

/**
 * The call picked on `h` came back at `now` after `latencyMs` (`ok` false for
 * an error or a timeout). Returns the latency as it is reported (capped).
 */
export function noteReport(h: PickableHost, ok: boolean, latencyMs: number, now: number, opts: FeedbackOptions = FEEDBACK_DEFAULTS): number {
  const lat = latencyMs > LIMITS.maxLatencyMs ? LIMITS.maxLatencyMs : latencyMs;
  if (h.inflight > 0) {
    h.inflight--;
    const n = h.inflight;
    // The calls still in flight were picked no earlier than this one (first
    // in, first out, near enough): a caller whose latencies are shorter than
    // the time from pick to report cannot make the host look ever older.
    const picked = now - lat;
    const rest = (h.pendingSum ?? 0) - picked;
    h.pendingSum = n === 0 ? 0 : rest < n * picked ? n * picked : rest;
  }
  h.lifeTs = now;
  // A call the caller gave up on at its timeout was not answered in that
  // time: it was still unanswered, and `latencyAt` counted it, in flight that
  // old, as AGE_FACTOR × its age. Giving up on it teaches nothing new, so it
  // counts the same: the estimate does not drop when the call stops being in
  // flight, and a host whose calls time out costs more than a peer with a
  // few calls in flight at the usual latency.
  const sample = ok ? lat : lat >= opts.timeoutMs ? AGE_FACTOR * lat : opts.timeoutMs;
  const est = h.latencyMs;
  const last = h.latencyTs ?? now;
  if (est === 0 || sample >= est) {
    h.latencyMs = sample;
  } else {
    const dt = now > last ? now - last : 0;
    const w = Math.exp(-dt / opts.decayMs);
    h.latencyMs = est * w + sample * (1 - w);
  }
  h.latencyTs = now;
  return lat;
}

/**
 * A call picked on `h` was not made after all (the caller could not use the
 * host, e.g. its connection was still opening): it stops counting as in
 * flight, and nothing is learnt of the host. Taken as the latest pick (a
 * release follows its pick at once).
 */
export function noteRelease(h: PickableHost, now: number): void {
  if (h.inflight === 0) return;
  h.inflight--;
  const n = h.inflight;
  const rest = (h.pendingSum ?? 0) - now;
  h.pendingSum = n === 0 || rest < 0 ? 0 : rest;
}

/**
 * The host's latency estimate at `now`: the peak EWMA decayed toward 0 for
 * the time since its last sample (a host nobody called lately looks cheaper
 * and gets a call that measures it), and at least twice the mean age of its
 * calls in flight (about the age of the oldest one): a host that stopped
 * answering looks slow before its first timeout comes back (calls that
 * `liveInflight` no longer counts, and an age beyond `timeoutMs`, do not count).
 */
export function latencyAt(h: PickableHost, now: number, decayMs: number, timeoutMs: number = FEEDBACK_DEFAULTS.timeoutMs): number {
  let est = h.latencyMs;
  const ts = h.latencyTs;
  if (ts !== undefined && now > ts && est > 0) est *= Math.exp(-(now - ts) / decayMs);
  const n = liveInflight(h, now, timeoutMs);
  if (n > 0 && h.pendingSum !== undefined) {
    const age = now - h.pendingSum / n;
    if (age <= timeoutMs && AGE_FACTOR * age > est) est = AGE_FACTOR * age;
  }
  return est;
}

/** Trial calls a probing host may have in flight at once from one agent, by default. */
export const DEFAULT_MAX_TRIALS = 1;

/**
 * `strategy.pick(key)`, except that a probing host that already has
 * `maxTrials` calls in flight from this agent (as `liveInflight` counts them
 * at `now`: a trial never reported stops counting after `timeoutMs`) is
 * passed over (the strategy is asked again, at most once per host, then -1):
 * a host that is still sick costs one call per probe round, not a burst.
 * With N agents, at most N × maxTrials trial calls are in flight at once.
 * The clock, when `now` is one, is read only for a probing host at its bound.
 */
export function pickBounded(
  strategy: Strategy,
  hosts: readonly PickableHost[],
  key: string | undefined,
  now: Now,
  maxTrials: number = DEFAULT_MAX_TRIALS,
  timeoutMs: number = FEEDBACK_DEFAULTS.timeoutMs,
): number {
  return boundTrials(strategy, hosts, key, strategy.pick(key), now, maxTrials, timeoutMs);
}

/**
 * `pickBounded` given the strategy's first answer `i`: for a caller that
 * looked at the first answer itself (the agent's fast path: a host that is
 * not probing needs no bound).
 */
export function boundTrials(
  strategy: Strategy,
  hosts: readonly PickableHost[],
  key: string | undefined,
  first: number,
  now: Now,
  maxTrials: number = DEFAULT_MAX_TRIALS,
  timeoutMs: number = FEEDBACK_DEFAULTS.timeoutMs,
): number {
  let i = first;
  // A key maps to one host: asking again would give the same answer.
  if (key !== undefined && strategy.name === StrategyName.hash) return i;
  for (let tries = hosts.length; i >= 0 && tries > 0; tries--) {
    if (!atBound(hosts[i]!, now, maxTrials, timeoutMs)) return i;
    i = strategy.pick(key);
  }
  return i >= 0 && atBound(hosts[i]!, now, maxTrials, timeoutMs) ? -1 : i;
}

function atBound(h: PickableHost, now: Now, maxTrials: number, timeoutMs: number): boolean {
  // liveInflight ≤ inflight: below the bound, no need for the time
  return h.state === 'probing' && h.inflight >= maxTrials && liveInflight(h, timeOf(now), timeoutMs) >= maxTrials;
}
