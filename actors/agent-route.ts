/**
 * An agent's model of one route: the table of hosts it picks from and the
 * pick strategy over it, brought up to date by `apply` with every route state
 * the agent receives. One model for the agent SDK (src/agent/agent.ts) and
 * the simulator (src/sim/engine.ts): the simulator runs the SDK's update path.
 *
 * A host keeps its object (and so the agent's feedback on it: latency, calls
 * in flight) for as long as the route names it; the usual update, the same
 * hosts in the same order with new states and weights, rebuilds nothing.
 * Pure: no clock, no I/O; the strategy maker is injected.
 */
import { HostState, type RouteState } from '../schemas/messages.ts';
import { trialWeight } from './strategies/hosts.ts';
import { DEFAULT_STRATEGY, weighsLoad } from './strategies/index.ts';
import type { PickableHost, Strategy, StrategyName } from './strategies/types.ts';

/** A pick's answer when there is a host (the SDK's `HostPick` when ok). */
export interface PickedHost {
  readonly ok: true;
  readonly ip: string;
  readonly port: number;
}

/** A host as an agent holds it. */
export class AgentHost implements PickableHost {
  readonly ip: string;
  readonly port: number;
  pickWeight: number;
  state: PickableHost['state'];
  reason: PickableHost['reason'] = undefined;
  /**
   * `state === 'probing'`, kept with it: the pick path tests it on every pick, and a
   * state decoded from a message is a string of its own, slower to compare than a boolean.
   */
  probing: boolean;
  /** Registry weight and zone, for zone-aware picking. */
  weight = 0;
  zone: string | null | undefined = undefined;
  latencyMs = 0;
  inflight = 0;
  // the feedback's fields (actors/strategies/feedback.ts), present from the start: one object shape
  latencyTs: number | undefined = undefined;
  pendingSum: number | undefined = undefined;
  lifeTs: number | undefined = undefined;
  /** Preallocated pick result: picking allocates nothing. */
  readonly result: PickedHost;

  constructor(ip: string, port: number, pickWeight: number, state: PickableHost['state']) {
    this.ip = ip;
    this.port = port;
    this.pickWeight = pickWeight;
    this.state = state;
    this.probing = state === HostState.probing;
    this.result = Object.freeze({ ok: true as const, ip, port });
  }

  /**
   * Takes the route state's view of this host: its state, reason, weights and zone as `agentId` picks it
   * (a probing host with weight 0 when `probes` is false: another picker of the same agent sends its trials).
   */
  take(h: RouteState['hosts'][number], agentId: string, probes = true): void {
    this.pickWeight = probes || h.state !== HostState.probing ? trialWeight(h, agentId) : 0;
    this.state = h.state;
    this.reason = h.reason;
    this.probing = h.state === HostState.probing;
    this.weight = h.weight;
    this.zone = h.zone;
  }
}

/** Makes a strategy instance for a route (the agent's randomness, clock and zone preference go in here). */
export type MakeStrategy = (name: StrategyName) => Strategy;

/** A route as an agent picks from it: its hosts, found by `ip:port` or by their pick result, and its strategy. */
export class AgentRoute {
  hosts: AgentHost[] = [];
  byKey = new Map<string, AgentHost>();
  byResult = new Map<object, AgentHost>();
  strategy: Strategy;
  /** Whether the strategy weighs load (strategies/index.ts `weighsLoad`): its picks read the clock. */
  weighsLoad: boolean;
  private strategyName: StrategyName;
  /** The agent's strategy for every route, over the one a route names. */
  private readonly override: StrategyName | undefined;
  private readonly make: MakeStrategy;
  /** This agent's id: a probing host whose trials are another agent's is picked with weight 0 here. */
  private readonly agentId: string;
  /**
   * False for one of several pickers of one agent (threads of a sidecar) that
   * leaves the trial calls of the route's probing hosts to another: they are
   * picked with weight 0 here, so the agent's bound on trial calls holds.
   */
  private readonly probes: boolean;

  constructor(agentId: string, override: StrategyName | undefined, make: MakeStrategy, probes = true) {
    this.agentId = agentId;
    this.probes = probes;
    this.override = override;
    this.make = make;
    this.strategyName = override ?? DEFAULT_STRATEGY;
    this.strategy = make(this.strategyName);
    this.weighsLoad = weighsLoad(this.strategyName);
  }

  /** Applies a new state of the route (the caller keeps states in order of versions). */
  readonly apply = (s: RouteState): void => {
    let next = this.hosts;
    let same = next.length === s.hosts.length;
    for (let i = 0; same && i < next.length; i++) {
      const a = next[i]!;
      const h = s.hosts[i]!;
      same = a.ip === h.ip && a.port === h.port;
    }
    if (same) {
      // The usual change (states and weights of the same hosts): no maps rebuilt.
      for (let i = 0; i < next.length; i++) {
        next[i]!.take(s.hosts[i]!, this.agentId, this.probes);
      }
    } else {
      next = [];
      const byKey = new Map<string, AgentHost>();
      const byResult = new Map<object, AgentHost>();
      for (const h of s.hosts) {
        const key = `${h.ip}:${h.port}`;
        let ah = this.byKey.get(key);
        if (ah === undefined) ah = new AgentHost(h.ip, h.port, h.pick_weight, h.state);
        ah.take(h, this.agentId, this.probes);
        next.push(ah);
        byKey.set(key, ah);
        byResult.set(ah.result, ah);
      }
      this.hosts = next;
      this.byKey = byKey;
      this.byResult = byResult;
    }
    // The agent's override, else the route's strategy, else the default.
    const name = this.override ?? s.strategy ?? DEFAULT_STRATEGY;
    if (name !== this.strategyName) {
      this.strategyName = name;
      this.strategy = this.make(name);
      this.weighsLoad = weighsLoad(name);
    }
    this.strategy.update({ hosts: next, panic: s.panic, probeNum: s.probe_num });
  };
}
