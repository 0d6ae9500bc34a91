/**
 * Figures of a run whose callers make calls under the call policy
 * (./calls.ts), over a window of the scenario's time (an outage, an
 * overload): attempts per logical call, the successful calls per second, the
 * time until calls stop failing (beyond 1 % of a 100 ms bucket) once it ends,
 * and the hedges' extra load.
 */
import { FINE_MS, type SimResult } from './result.ts';
import type { Scenario } from './scenario.ts';

/** A window of the scenario's time, ms. */
export interface Window {
  fromMs: number;
  toMs: number;
}

/** The window of the first change of the scenario's first host group that has an end (its `at_s` for `for_s`). */
export function changeWindow(s: Scenario): Window {
  for (const g of s.hosts) {
    for (const c of g.changes ?? []) {
      if (c.for_s !== undefined && c.every_s === undefined) return { fromMs: c.at_s * 1000, toMs: (c.at_s + c.for_s) * 1000 };
    }
  }
  throw new Error(`scenario ${s.name}: no change with an end`);
}

function calls(r: SimResult): NonNullable<SimResult['callStats']> {
  if (r.callStats === undefined) throw new Error(`scenario ${r.scenario}: its callers make single picks (no \`call\`)`);
  return r.callStats;
}

/** Sum of `arr` over the 1 s buckets within `w`. */
function sumOver(arr: readonly number[], w: Window, bucketMs: number): number {
  let n = 0;
  for (let b = Math.ceil(w.fromMs / bucketMs); b * bucketMs < w.toMs && b < arr.length; b++) n += arr[b] ?? 0;
  return n;
}

/** Attempts (first, retries, hedges) per logical call started within `w`; a call refused by shedding makes none. */
export function amplification(r: SimResult, w: Window): number {
  const c = calls(r);
  const logical = sumOver(c.logicalPerBucket, w, r.timeline.bucketMs);
  return logical > 0 ? sumOver(c.attemptsPerBucket, w, r.timeline.bucketMs) / logical : Number.NaN;
}

/** Successful logical calls started within `w`, per second. */
export function goodputPerSec(r: SimResult, w: Window): number {
  const c = calls(r);
  const ok = sumOver(c.logicalPerBucket, w, r.timeline.bucketMs) - sumOver(r.timeline.failed, w, r.timeline.bucketMs);
  return ok / ((w.toMs - w.fromMs) / 1000);
}

/** A 100 ms bucket serves normally when at most this share of the calls started in it failed. */
export const NORMAL_FAILED_SHARE = 0.01;

/**
 * Seconds from `atMs` to the end of the last 100 ms bucket after it in which
 * more than NORMAL_FAILED_SHARE of the logical calls started failed; 0 when
 * none.
 */
export function recoverySec(r: SimResult, atMs: number): number {
  const c = calls(r);
  const f = c.failedPer100ms;
  for (let i = f.length - 1; i >= 0 && (i + 1) * FINE_MS > atMs; i--) {
    const n = c.logicalPer100ms[i] ?? 0;
    if ((f[i] ?? 0) > NORMAL_FAILED_SHARE * n) return Math.max(0, (i + 1) * FINE_MS - atMs) / 1000;
  }
  return 0;
}

/** Hedges as a share of first attempts, %. */
export function hedgeExtraPct(r: SimResult): number {
  const c = calls(r);
  return c.first > 0 ? (c.hedge * 100) / c.first : 0;
}

/** Logical calls that succeeded, of all, %. */
export function logicalSuccessPct(r: SimResult): number {
  return r.successPct;
}
