/**
 * The agent's local feedback to its pick strategy, as one pure function
 * pair: a pick adds a call in flight to the host; a report removes it and
 * moves the host's latency estimate (EWMA, weight 0.2 per sample, the first
 * sample taken as is). This is exactly what the agent SDK does in
 * `Agent.pickFrom` and `Agent.report` (src/agent/agent.ts); the simulator
 * calls these so that both follow one rule.
 */
import { LIMITS } from '../../schemas/messages.ts';
import type { PickableHost } from '../../actors/strategies/types.ts';

/** Weight of a new latency sample in the agent's estimate. */
export const FEEDBACK_LATENCY_ALPHA = 0.2;

/** A call was picked on `h`. */
export function notePick(h: PickableHost): void {
  h.inflight++;
}

/** The call picked on `h` came back after `latencyMs` (success or error); returns the latency as reported (capped). */
export function noteReport(h: PickableHost, latencyMs: number): number {
  const lat = latencyMs > LIMITS.maxLatencyMs ? LIMITS.maxLatencyMs : latencyMs;
  if (h.inflight > 0) h.inflight--;
  h.latencyMs = h.latencyMs === 0 ? lat : h.latencyMs + FEEDBACK_LATENCY_ALPHA * (lat - h.latencyMs);
  return lat;
}
