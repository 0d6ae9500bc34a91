/**
 * A simulated agent (./engine.ts): the route as the SDK holds it, its report
 * batch in the making (reports, attempt marks, the latest utilization per
 * host) and the call policy of its latest route state.
 */
import { AgentRoute, type MakeStrategy } from '../../actors/agent-route.ts';
import { policyOf, type AgentPolicy } from '../../actors/agent-budget.ts';
import type { StrategyName } from '../../actors/strategies/index.ts';
import type { AttemptTuple, ReportTuple, RouteState, UtilizationTuple } from '../../schemas/messages.ts';

export class SimAgent {
  readonly id: string;
  /**
   * The route as the agent holds it, the SDK's own model (actors/agent-route.ts). Its hosts are in the
   * scenario's order (the route state keeps the registry's, and the scenario's hosts never change): a
   * host's index there is the simulated host's.
   */
  readonly route: AgentRoute;
  private version = 0;
  reports: ReportTuple[] = [];
  /** Attempt marks of the batch's retries and hedges. */
  marks: AttemptTuple[] = [];
  /** The call policy of the latest route state. */
  policy: AgentPolicy = policyOf(undefined);
  /** The latest utilization each host answered with in the current batch (NaN: none), and how many hosts have one. */
  util: Float64Array;
  utilHosts = 0;
  batchTs = 0;
  gen = 0;

  constructor(id: string, strategy: StrategyName, make: MakeStrategy, hosts: number) {
    this.id = id;
    this.route = new AgentRoute(id, strategy, make);
    this.util = new Float64Array(hosts).fill(Number.NaN);
  }

  /** The batch's utilization pairs (the latest per host), and a fresh start for the next batch. */
  takeUtilization(): UtilizationTuple[] | undefined {
    if (this.utilHosts === 0) return undefined;
    const out: UtilizationTuple[] = [];
    for (let h = 0; h < this.util.length; h++) {
      const u = this.util[h]!;
      if (u === u) out.push([h, u]);
    }
    this.util.fill(Number.NaN);
    this.utilHosts = 0;
    return out;
  }

  /** A route state arrives: applied as the SDK applies it, in order of versions (as the SDK's route follower keeps them). */
  apply(s: RouteState): void {
    if (s.version <= this.version) return;
    this.version = s.version;
    this.route.apply(s);
    this.policy = policyOf(s);
  }
}
