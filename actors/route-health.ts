/**
 * How many of a route's hosts may be out at once (the ejection cap, Envoy's
 * max_ejection_percent) and whether the route is in panic (Envoy's panic
 * threshold: too few well hosts, so traffic spreads over every host that is
 * not draining rather than crushing the rest). Both count the hosts that are
 * not draining (`active`).
 */
import type { PolicyHost } from './profiles/types.ts';
import type { RouteParams } from './params.ts';

/** How many of `active` hosts may be ejected (overloaded or probing) at once. */
export function ejectionCap(active: number, p: RouteParams): number {
  const pct = Math.floor((active * p.max_ejection_percent) / 100);
  return p.eject_at_least_one >= 1 ? Math.max(1, pct) : pct;
}

/** Fewer than panic_threshold percent of the `active` hosts are well (healthy, not marked suspect by the cap). */
export function inPanic(hosts: readonly PolicyHost[], active: number, p: RouteParams): boolean {
  const t = p.panic_threshold;
  if (t <= 0 || active === 0) return false;
  let well = 0;
  for (const s of hosts) if (s.state === 'healthy' && !s.suspect) well++;
  return (well * 100) / active < t;
}
