/**
 * What the agents call during a nemesis run: the routes and their hosts,
 * which agent calls which route, and a host behaviour schedule (some hosts
 * fail for a while, then recover). Pure and seeded: the harness and the
 * agent processes compute the same plan from the same numbers.
 *
 * Every report carries its own identity: the latency of the n-th report of
 * an agent is 1 + n / 2^23 ms, exact in ClickHouse's Float32 `latency_ms`
 * (23 bits of mantissa over [1, 2)), so `(caller, latency_ms)` names one
 * report and a stored row can be matched to the call that made it. The
 * latencies stay within 1–2 ms, which no latency rule of the route actors
 * treats as slow.
 */
import { seededRandom } from '../../actors/strategies/random.ts';

export const ID_SCALE = 2 ** 23;

/** Latency, ms, that carries report id `n` (1 ≤ n < 2^23). */
export function latencyOf(n: number): number {
  return 1 + n / ID_SCALE;
}

/** The ClickHouse expression giving back the report id from `latency_ms`. */
export const ID_SQL = `toUInt64(round((toFloat64(latency_ms) - 1) * ${ID_SCALE}))`;

export interface RouteSpec {
  modid: number;
  cmdid: number;
  hosts: Array<{ ip: string; port: number }>;
}

export interface FailWindow {
  route: string;
  host: string;
  /** From the run's start, ms. */
  from: number;
  to: number;
  /** Share of calls that fail meanwhile. */
  errorRate: number;
}

export interface Workload {
  routes: RouteSpec[];
  /** Agent id → the routes it calls (`modid.cmdid`). */
  callers: Map<string, string[]>;
  failures: FailWindow[];
}

export interface WorkloadOptions {
  seed: number;
  routes: number;
  hostsPerRoute: number;
  /** Agent ids, in order. */
  agents: string[];
  routesPerAgent: number;
  /** Host failures are planned over [0, spanMs). */
  spanMs: number;
  /** Failure windows per route per minute of span, on average. */
  failuresPerRouteMinute: number;
}

export const routeKey = (m: number, c: number): string => `${m}.${c}`;

export function makeWorkload(o: WorkloadOptions): Workload {
  const r = seededRandom(o.seed ^ 0x5bd1e995);
  const routes: RouteSpec[] = Array.from({ length: o.routes }, (_, i) => ({
    modid: 7100 + i,
    cmdid: 1,
    hosts: Array.from({ length: o.hostsPerRoute }, (_, h) => ({ ip: `10.71.${i}.${h + 1}`, port: 8000 })),
  }));
  const callers = new Map<string, string[]>();
  o.agents.forEach((a, i) => {
    const mine: string[] = [];
    for (let k = 0; k < Math.min(o.routesPerAgent, routes.length); k++) {
      const rt = routes[(i * o.routesPerAgent + k) % routes.length]!;
      mine.push(routeKey(rt.modid, rt.cmdid));
    }
    callers.set(a, mine);
  });
  const failures: FailWindow[] = [];
  const perRoute = Math.max(1, Math.round((o.failuresPerRouteMinute * o.spanMs) / 60_000));
  for (const rt of routes) {
    for (let k = 0; k < perRoute; k++) {
      const h = rt.hosts[Math.floor(r() * rt.hosts.length)]!;
      const from = Math.floor(r() * o.spanMs);
      const len = 4000 + Math.floor(r() * 16_000);
      failures.push({ route: routeKey(rt.modid, rt.cmdid), host: `${h.ip}:${h.port}`, from, to: from + len, errorRate: r() < 0.5 ? 1 : 0.6 });
    }
  }
  return { routes, callers, failures };
}

/**
 * The outcome of a call, from the failure windows: a function per route and
 * host, evaluated on each call (the windows are few).
 */
export class HostBehaviour {
  private readonly byHost = new Map<string, FailWindow[]>();
  private readonly random: () => number;

  constructor(failures: readonly FailWindow[], seed: number) {
    this.add(failures);
    this.random = seededRandom(seed);
  }

  /** More failure windows (the harness makes hosts fail before it idles their routes). */
  add(failures: readonly FailWindow[]): void {
    for (const f of failures) {
      const k = `${f.route}/${f.host}`;
      const l = this.byHost.get(k) ?? [];
      l.push(f);
      this.byHost.set(k, l);
    }
  }

  /** Retcode of a call to `host` on `route` at `tMs` from the run's start: 0 success, 1 failure. */
  retcode(route: string, host: string, tMs: number): number {
    const ws = this.byHost.get(`${route}/${host}`);
    if (ws === undefined) return 0;
    for (const w of ws) if (tMs >= w.from && tMs < w.to) return this.random() < w.errorRate ? 1 : 0;
    return 0;
  }
}
