/**
 * How many routes local callers may make the sidecar follow. Each followed
 * route is a subscription and a cache entry for the sidecar's life; a
 * client asking for arbitrary route ids (a bug, or a scan) must not grow
 * them without bound. Routes already followed are always served.
 */
import type { Agent } from '../agent/agent.ts';

export const DEFAULT_MAX_ROUTES = 10_000;

export class RouteBudget {
  readonly max: number;
  private readonly agent: Agent;
  /** Requests refused because they would have started following one more route. */
  refused = 0;

  constructor(agent: Agent, max = DEFAULT_MAX_ROUTES) {
    this.agent = agent;
    this.max = max;
  }

  /** True when the route is followed, or may be followed from now on. */
  allows(modid: number, cmdid: number): boolean {
    if (this.agent.follower.peek(modid, cmdid) !== undefined) return true;
    if (this.agent.follower.stats().routes < this.max) return true;
    this.refused++;
    return false;
  }
}
