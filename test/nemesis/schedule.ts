/**
 * The nemesis' plan: groups of faults run one after another; a group is one
 * fault or an overlapping pair, or the full-cluster restart on its own. The
 * next group starts only after the previous one healed (every process runs
 * again and JetStream answers writes) plus a quiet time, so every heal is
 * judged on a window of its own. Pure: a seed gives the same plan.
 *
 * Quorum rule: never two nats-servers down (killed, stopped or paused) at
 * once, except in the dedicated full-cluster restart.
 */
import { seededRandom } from '../../actors/strategies/random.ts';

export const FaultKind = {
  /** SIGKILL, then start again after the fault's duration (same store, same node id). */
  kill: 'kill',
  /** SIGSTOP, then SIGCONT after the duration. */
  pause: 'pause',
  /** SIGTERM (graceful), down for the duration, then start again. */
  restart: 'restart',
  /** Every nats-server stopped (SIGTERM), down for the duration, all started again. */
  clusterRestart: 'cluster-restart',
} as const;
export type FaultKind = (typeof FaultKind)[keyof typeof FaultKind];

/** The JetStream asset whose leader a target can be: the leases bucket or the reports stream. */
export const LeaderOf = { leases: 'leases', reports: 'reports' } as const;
export type LeaderOf = (typeof LeaderOf)[keyof typeof LeaderOf];

export type Target =
  | { kind: 'nats'; index: number }
  /** The server leading that asset when the fault starts. */
  | { kind: 'nats'; leaderOf: LeaderOf }
  | { kind: 'node'; index: number }
  | { kind: 'sink'; index: number }
  | { kind: 'cluster' };

export interface PlannedFault {
  kind: FaultKind;
  target: Target;
  /** From the group's start. */
  offsetMs: number;
  /** How long the process stays down or paused. */
  durationMs: number;
}

export interface FaultGroup {
  /** Quiet time after the previous group healed (or the warm-up) before this group starts. */
  quietMs: number;
  faults: PlannedFault[];
}

export interface Sizes {
  servers: number;
  nodes: number;
  sinks: number;
}

export function describeTarget(t: Target): string {
  switch (t.kind) {
    case 'cluster':
      return 'every nats-server';
    case 'nats':
      return 'leaderOf' in t ? `the nats-server leading the ${t.leaderOf}` : `nats-${t.index}`;
    default:
      return `${t.kind}-${t.index}`;
  }
}

export function describeFault(f: PlannedFault): string {
  const what = { kill: 'kill -9', pause: 'SIGSTOP/SIGCONT', restart: 'restart', 'cluster-restart': 'full-cluster restart' }[f.kind];
  return `${what} of ${describeTarget(f.target)} for ${(f.durationMs / 1000).toFixed(1)} s`;
}

/** Why a group breaks the rules, or undefined when it keeps them. */
export function groupProblem(g: FaultGroup, sizes: Sizes): string | undefined {
  if (g.faults.length === 0) return 'a group without faults';
  const cluster = g.faults.filter((f) => f.kind === FaultKind.clusterRestart || f.target.kind === 'cluster');
  if (cluster.length > 0 && (g.faults.length > 1 || cluster[0]!.kind !== FaultKind.clusterRestart || cluster[0]!.target.kind !== 'cluster')) {
    return 'the full-cluster restart runs alone, as a cluster-restart of the cluster';
  }
  for (const f of g.faults) {
    if (!(f.durationMs > 0) || !(f.offsetMs >= 0)) return `bad timing in ${describeFault(f)}`;
    const t = f.target;
    if (t.kind === 'nats' && 'index' in t && !(t.index >= 0 && t.index < sizes.servers)) return `no nats-${t.index}`;
    if (t.kind === 'node' && !(t.index >= 0 && t.index < sizes.nodes)) return `no node-${t.index}`;
    if (t.kind === 'sink' && !(t.index >= 0 && t.index < sizes.sinks)) return `no sink-${t.index}`;
  }
  // Two faults on nats-servers overlapping in time would take the quorum away.
  const nats = g.faults.filter((f) => f.target.kind === 'nats');
  for (let i = 0; i < nats.length; i++) {
    for (let j = i + 1; j < nats.length; j++) {
      const a = nats[i]!;
      const b = nats[j]!;
      if (a.offsetMs < b.offsetMs + b.durationMs && b.offsetMs < a.offsetMs + a.durationMs) return `two nats-servers down at once: ${describeFault(a)} and ${describeFault(b)}`;
    }
  }
  // A pair must overlap: each fault starts before the other one ends.
  if (g.faults.length === 2) {
    const [a, b] = g.faults as [PlannedFault, PlannedFault];
    if (!(a.offsetMs < b.offsetMs + b.durationMs && b.offsetMs < a.offsetMs + a.durationMs)) return 'a pair that does not overlap';
    if (sameProcess(a.target, b.target)) return 'a pair on one process';
  }
  if (g.faults.length > 2) return 'more than two faults in a group';
  return undefined;
}

function sameProcess(a: Target, b: Target): boolean {
  if (a.kind !== b.kind) return false;
  if (a.kind === 'nats' || b.kind === 'nats') return a.kind === 'nats' && b.kind === 'nats' && 'index' in a && 'index' in b && a.index === b.index;
  return 'index' in a && 'index' in b && a.index === b.index;
}

/**
 * The short run's fixed plan: kill -9 of the server leading the leases
 * bucket, SIGSTOP of a route node past its lease, kill -9 of a sink, a
 * graceful restart of the server leading the reports stream, an overlapping
 * pair (a node killed while the server leading the leases bucket is
 * paused), and the full-cluster restart.
 */
export function shortPlan(leaseMs: number): FaultGroup[] {
  const quiet = quietMs(leaseMs, 1000);
  return [
    { quietMs: quiet, faults: [{ kind: FaultKind.kill, target: { kind: 'nats', leaderOf: LeaderOf.leases }, offsetMs: 0, durationMs: 4000 }] },
    { quietMs: quiet, faults: [{ kind: FaultKind.pause, target: { kind: 'node', index: 0 }, offsetMs: 0, durationMs: leaseMs + 2500 }] },
    { quietMs: quiet, faults: [{ kind: FaultKind.kill, target: { kind: 'sink', index: 0 }, offsetMs: 0, durationMs: 3000 }] },
    { quietMs: quiet, faults: [{ kind: FaultKind.restart, target: { kind: 'nats', leaderOf: LeaderOf.reports }, offsetMs: 0, durationMs: 3000 }] },
    {
      quietMs: quiet,
      faults: [
        { kind: FaultKind.kill, target: { kind: 'node', index: 1 }, offsetMs: 0, durationMs: 5000 },
        { kind: FaultKind.pause, target: { kind: 'nats', leaderOf: LeaderOf.leases }, offsetMs: 1500, durationMs: 4000 },
      ],
    },
    { quietMs: quiet, faults: [{ kind: FaultKind.clusterRestart, target: { kind: 'cluster' }, offsetMs: 0, durationMs: 3000 }] },
  ];
}

/** The quiet time before a group: long enough to judge the previous heal (lease time + 1 s) and then some. */
export function quietMs(leaseMs: number, extraMs: number): number {
  return leaseMs + 1000 + 1000 + extraMs;
}

/**
 * An endless, seeded sequence of fault groups for the long run: about 6 %
 * full-cluster restarts, a third overlapping pairs, the rest single faults;
 * targets spread over servers (a third of them the leases bucket's leader,
 * a sixth the reports stream's), nodes and sinks; 1.5–6 s per fault.
 */
export function* randomPlan(seed: number, sizes: Sizes, leaseMs: number): Generator<FaultGroup> {
  const r = seededRandom(seed);
  const int = (lo: number, hi: number): number => lo + Math.floor(r() * (hi - lo + 1));
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(r() * xs.length)]!;
  const duration = (): number => int(15, 60) * 100;
  const natsTarget = (): Target => {
    const x = r();
    if (x < 1 / 3) return { kind: 'nats', leaderOf: LeaderOf.leases };
    if (x < 1 / 2) return { kind: 'nats', leaderOf: LeaderOf.reports };
    return { kind: 'nats', index: int(0, sizes.servers - 1) };
  };
  const target = (noNats: boolean): Target => {
    const x = r();
    if (!noNats && x < 0.4) return natsTarget();
    if (x < 0.8 || sizes.sinks === 0) return { kind: 'node', index: int(0, sizes.nodes - 1) };
    return { kind: 'sink', index: int(0, sizes.sinks - 1) };
  };
  const kind = (): FaultKind => pick([FaultKind.kill, FaultKind.kill, FaultKind.pause, FaultKind.pause, FaultKind.restart] as const);
  for (;;) {
    const quiet = quietMs(leaseMs, int(0, 20) * 100);
    const x = r();
    let g: FaultGroup;
    if (x < 0.06) {
      g = { quietMs: quiet, faults: [{ kind: FaultKind.clusterRestart, target: { kind: 'cluster' }, offsetMs: 0, durationMs: int(20, 50) * 100 }] };
    } else if (x < 0.4) {
      const a: PlannedFault = { kind: kind(), target: target(false), offsetMs: 0, durationMs: duration() };
      let bt = target(a.target.kind === 'nats');
      for (let tries = 0; sameProcess(a.target, bt) && tries < 10; tries++) bt = target(a.target.kind === 'nats');
      // the second starts while the first is still on, and may outlast it
      const b: PlannedFault = { kind: kind(), target: bt, offsetMs: int(3, Math.max(3, Math.floor(a.durationMs / 100) - 3)) * 100, durationMs: duration() };
      g = { quietMs: quiet, faults: [a, b] };
      if (groupProblem(g, sizes) !== undefined) g = { quietMs: quiet, faults: [a] };
    } else {
      g = { quietMs: quiet, faults: [{ kind: kind(), target: target(false), offsetMs: 0, durationMs: duration() }] };
    }
    yield g;
  }
}
