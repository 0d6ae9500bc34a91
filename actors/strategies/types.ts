/**
 * Pick strategies: pure, synchronous, no I/O and no clock. An agent holds one
 * strategy instance per route; `update` is called with every new route state,
 * `pick` on every getHost.
 */
import type { HostState, Reason } from '../../schemas/messages.ts';
import { PickStrategy } from '../../schemas/contract.ts';

/** A host as the agent sees it. `latencyMs` and `inflight` are kept up to date by the agent. */
export interface PickableHost {
  readonly ip: string;
  readonly port: number;
  /** Effective weight from the route state (0 = do not pick, except as a Lars probe). */
  readonly pickWeight: number;
  readonly state: HostState;
  /** Why the host is in its state (the route state's `reason`), when the caller keeps it: an operator's ejection is never probed. */
  readonly reason?: Reason | undefined;
  /** Smoothed latency the agent observed, ms (0 when unknown). */
  latencyMs: number;
  /** Calls picked and not yet reported. */
  inflight: number;
  /** When `latencyMs` last took a sample, ms (feedback.ts; absent until the first report). */
  latencyTs?: number | undefined;
  /** Sum of the pick times of the calls in flight, ms (feedback.ts): their mean age is now − pendingSum / inflight. */
  pendingSum?: number | undefined;
  /** Last sign of life, ms (feedback.ts): a report, or a pick while nothing was in flight. */
  lifeTs?: number | undefined;
}

/** A route as a strategy picks from it: the hosts as the agent holds them (actors/agent-route.ts), panic and probe_num. */
export interface PickView {
  readonly hosts: readonly PickableHost[];
  /** Route in panic: pick weights already spread over all non-draining hosts. */
  readonly panic: boolean;
  /** Lars' probe_num. */
  readonly probeNum: number;
}

export interface Strategy {
  readonly name: StrategyName;
  /** Rebuilds internal state for a new view of the route. Keeps rotation state when it can. */
  update(view: PickView): void;
  /**
   * Returns the index in `view.hosts` of the chosen host, or -1 when no host
   * may be picked. `key` is used by the consistent-hash strategy only.
   */
  pick(key?: string): number;
}

/** The strategy names are the contract's (a route state may name one). */
export const StrategyName = PickStrategy;
export type StrategyName = (typeof StrategyName)[keyof typeof StrategyName];

/** Random source in [0, 1); injected so tests are deterministic. */
export type Random = () => number;

/** Options every `createXxx` accepts; strategies that need more extend it. */
export interface StrategyOptions {
  /**
   * Randomness for start offsets (swrr, hash fallback) and draws (p2c). When
   * absent: swrr starts at its canonical position, p2c uses `seededRandom`
   * with a fixed seed. The agent injects a real source so that agents spread.
   */
  readonly random?: Random;
}
