/**
 * What the route metrics show of the routes a node publishes, kept from its
 * route changes (never from the report path): hosts by state, panic, shedding, and
 * for every ejected host since when. Label sets stay bounded however many
 * routes there are: only the `top` worst routes get a `route` label, the
 * rest are summed under `route="_other"`.
 */
import type { RouteState } from '../../schemas/messages.ts';
import { HostState } from '../../schemas/messages.ts';

/** The `route` label of everything outside the top-N. */
export const OTHER_ROUTES = '_other';

/**
 * Routes named in the per-route metrics. Twenty names the routes an
 * on-call engineer looks at first while keeping a node's scrape to at most
 * 21 series per per-route metric, with thousands of routes per node.
 */
export const DEFAULT_TOP_ROUTES = 20;

/** A host is ejected while the route actor keeps it from full traffic for errors or latency: overloaded, or probing back in. */
function isEjected(state: string): boolean {
  return state === HostState.overloaded || state === HostState.probing;
}

/** What the per-route metrics keep of a route's latest state. */
interface RouteTally {
  partition: number;
  panic: boolean;
  /** The route's published shedding share (0: not shedding). */
  shed: number;
  byState: Map<string, number>;
  /** `ip:port` → since when ejected (ms since the epoch), kept across overloaded ⇄ probing. */
  ejectedSince: Map<string, number>;
}

export interface RouteRow {
  route: string;
  ejected: number;
  /** 1 in panic, 0 otherwise; for `_other` the number of routes in panic. */
  panic: number;
  /** Longest time a host of the route has been ejected, seconds (0 when none is). */
  longestEjectedS: number;
}

export class RouteBoard {
  readonly top: number;
  private readonly routes = new Map<string, RouteTally>();
  private readonly partitionOf: (modid: number, cmdid: number) => number;

  constructor(top: number = DEFAULT_TOP_ROUTES, partitionOf: (modid: number, cmdid: number) => number = () => 0) {
    this.top = top;
    this.partitionOf = partitionOf;
  }

  /** Takes a published route state. */
  apply(s: RouteState): void {
    const key = `${s.modid}.${s.cmdid}`;
    if (s.removed) {
      this.routes.delete(key);
      return;
    }
    const prev = this.routes.get(key);
    const byState = new Map<string, number>();
    const ejectedSince = new Map<string, number>();
    for (const h of s.hosts) {
      byState.set(h.state, (byState.get(h.state) ?? 0) + 1);
      if (isEjected(h.state)) {
        const hk = `${h.ip}:${h.port}`;
        ejectedSince.set(hk, prev?.ejectedSince.get(hk) ?? h.since);
      }
    }
    this.routes.set(key, { partition: this.partitionOf(s.modid, s.cmdid), panic: s.panic, shed: s.shed ?? 0, byState, ejectedSince });
  }

  /** Forgets the routes of a partition this node no longer serves. */
  dropPartition(p: number): void {
    for (const [k, v] of this.routes) if (v.partition === p) this.routes.delete(k);
  }

  has(route: string): boolean {
    return this.routes.has(route);
  }

  get size(): number {
    return this.routes.size;
  }

  /** Hosts of every route by state. */
  hostsByState(): Record<string, number> {
    const out: Record<string, number> = Object.fromEntries(Object.values(HostState).map((s) => [s, 0]));
    for (const v of this.routes.values()) for (const [s, n] of v.byState) out[s] = (out[s] ?? 0) + n;
    return out;
  }

  routesInPanic(): number {
    let n = 0;
    for (const v of this.routes.values()) if (v.panic) n++;
    return n;
  }

  /** Routes whose published state says they shed calls (docs/calls.md). */
  routesShedding(): number {
    let n = 0;
    for (const v of this.routes.values()) if (v.shed > 0) n++;
    return n;
  }

  /**
   * Routes with an ejected host or in panic, worst first (panic, then
   * ejected hosts, then longest ejection), the first `top` by name and the
   * rest summed into one `_other` row (present only when there is a rest).
   */
  rows(nowMs: number): RouteRow[] {
    const bad: RouteRow[] = [];
    for (const [route, v] of this.routes) {
      if (!v.panic && v.ejectedSince.size === 0) continue;
      let oldest = nowMs;
      for (const t of v.ejectedSince.values()) if (t < oldest) oldest = t;
      bad.push({ route, ejected: v.ejectedSince.size, panic: v.panic ? 1 : 0, longestEjectedS: Math.max(0, (nowMs - oldest) / 1000) });
    }
    bad.sort((a, b) => b.panic - a.panic || b.ejected - a.ejected || b.longestEjectedS - a.longestEjectedS || (a.route < b.route ? -1 : 1));
    if (bad.length <= this.top) return bad;
    const rest = bad.slice(this.top);
    const other: RouteRow = { route: OTHER_ROUTES, ejected: 0, panic: 0, longestEjectedS: 0 };
    for (const r of rest) {
      other.ejected += r.ejected;
      other.panic += r.panic;
      other.longestEjectedS = Math.max(other.longestEjectedS, r.longestEjectedS);
    }
    return [...bad.slice(0, this.top), other];
  }
}
