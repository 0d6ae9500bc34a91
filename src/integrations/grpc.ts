/**
 * gRPC through @grpc/grpc-js: a resolver for targets `lars:///<modid>/<cmdid>`
 * that feeds the route's hosts to the channel (following the route), and a
 * load-balancing policy, `lars_pick`, that picks the host of every call with
 * the agent's strategy and reports each call's status and latency when it
 * ends. A call past its deadline ends (and is reported, DEADLINE_EXCEEDED,
 * latency ≈ the deadline) when the deadline fires.
 *
 *   const options = larsGrpcOptions(agent, { failure: { grpcCodes: [14, 4] } });
 *   const client = new MyClient('lars:///1/2', credentials.createInsecure(), options);
 *
 * The resolver hands the channel a service config selecting `lars_pick`, so
 * the target alone is enough. Metadata `lars-key` is the key for the
 * consistent-hash strategy. A picked host whose connection failed is
 * reported as a connection error and another host is picked (up to 3 times
 * per call).
 */
import { performance } from 'node:perf_hooks';
import { connectivityState as ConnectivityState, experimental, Metadata, status as Status, type ChannelOptions, type ServiceConfig } from '@grpc/grpc-js';
import type { Agent } from '../agent/agent.ts';
import type { RouteState } from '../../schemas/messages.ts';
import { connectionRetcode, grpcRetcode, resolveFailurePolicy, type FailurePolicy, type ResolvedFailurePolicy } from './outcome.ts';
import { isRouteId } from './target.ts';

export { servedReporter, type ServedReporter, type ServedReporterOptions } from './grpc-server.ts';

export { DEFAULT_FAILURE_POLICY, DEFAULT_GRPC_FAILURE_CODES, GrpcCode, Retcode, type FailurePolicy } from './outcome.ts';
export { createGrpcCaller, GrpcCaller, classifyGrpc, type GrpcCallerOptions, type UnaryInvoke } from './grpc-call.ts';

/** URI scheme of the resolver. */
export const LARS_GRPC_SCHEME = 'lars';
/** Name of the load-balancing policy. */
export const LARS_PICK_POLICY = 'lars_pick';
/** Channel option naming the agent (its id) a channel uses; set by larsGrpcOptions. */
export const LARS_AGENT_OPTION = 'lars.agent';
/** Metadata key whose value is the consistent-hash key of a call. */
export const LARS_KEY_METADATA = 'lars-key';
const MAX_PICK_ATTEMPTS = 3;

export interface GrpcIntegrationOptions {
  /** What counts as a failure (default gRPC codes UNAVAILABLE, DEADLINE_EXCEEDED, RESOURCE_EXHAUSTED, INTERNAL, UNKNOWN; connection errors). */
  failure?: Partial<FailurePolicy>;
  /** Monotonic clock for latencies, ms (default performance.now). */
  clock?: () => number;
}

interface Bound {
  readonly agent: Agent;
  readonly policy: ResolvedFailurePolicy;
  readonly clock: () => number;
}

const agents = new Map<string, Bound>();
let lastBound: string | undefined;
let registered = false;

/**
 * Registers the `lars` resolver and the `lars_pick` policy (once per process)
 * and binds `agent` to channels made with the returned options (the last
 * agent bound also serves channels without the option).
 */
export function larsGrpcOptions(agent: Agent, opts: GrpcIntegrationOptions = {}): ChannelOptions {
  registerLarsGrpc();
  agents.set(agent.id, { agent, policy: resolveFailurePolicy(opts.failure), clock: opts.clock ?? (() => performance.now()) });
  lastBound = agent.id;
  return { [LARS_AGENT_OPTION]: agent.id };
}

/** Forgets an agent bound by larsGrpcOptions (channels still open keep it). */
export function releaseGrpcAgent(agent: Agent): void {
  agents.delete(agent.id);
  if (lastBound === agent.id) lastBound = undefined;
}

/** Registers the resolver and the policy with grpc-js (idempotent). */
export function registerLarsGrpc(): void {
  if (registered) return;
  registered = true;
  experimental.registerResolver(LARS_GRPC_SCHEME, LarsResolver);
  experimental.registerLoadBalancerType(LARS_PICK_POLICY, LarsPickBalancer, LarsPickConfig);
}

function boundAgent(id: unknown): Bound | undefined {
  const key = typeof id === 'string' ? id : lastBound;
  return key === undefined ? undefined : agents.get(key);
}

/** Parses the path of `lars:///<modid>/<cmdid>`; undefined when it is not one. */
export function parseGrpcTarget(path: string): { modid: number; cmdid: number } | undefined {
  const m = /^\/?(\d+)\/(\d+)\/?$/.exec(path);
  if (m === null) return undefined;
  const modid = Number(m[1]);
  const cmdid = Number(m[2]);
  return isRouteId(modid) && isRouteId(cmdid) ? { modid, cmdid } : undefined;
}

// ---------------------------------------------------------------- resolver

class LarsResolver implements experimental.Resolver {
  private readonly listener: experimental.ResolverListener;
  private readonly target: { modid: number; cmdid: number } | undefined;
  private readonly bound: Bound | undefined;
  private readonly agentId: string | undefined;
  private stop: (() => void) | undefined;
  private last: RouteState | undefined;
  private destroyed = false;
  private started = false;

  static getDefaultAuthority(target: experimental.GrpcUri): string {
    const t = parseGrpcTarget(target.path);
    return t === undefined ? 'lars' : `lars-${t.modid}-${t.cmdid}`;
  }

  constructor(target: experimental.GrpcUri, listener: experimental.ResolverListener, options: ChannelOptions) {
    this.listener = listener;
    this.target = parseGrpcTarget(target.path);
    this.bound = boundAgent(options[LARS_AGENT_OPTION]);
    this.agentId = this.bound?.agent.id;
  }

  updateResolution(): void {
    if (this.destroyed) return;
    if (this.target === undefined) return this.fail(`not a lars:///<modid>/<cmdid> target`);
    if (this.bound === undefined) return this.fail('no agent bound: call larsGrpcOptions(agent) and pass its options to the client');
    if (!this.started) {
      this.started = true;
      const { modid, cmdid } = this.target;
      try {
        // the listener runs at once when the route is loaded: hand the channel its first state after this call returns
        this.stop = this.bound.agent.watchRoute(modid, cmdid, (s) => {
          this.last = s;
          process.nextTick(() => {
            if (this.last === s) this.emit(s);
          });
        });
      } catch (err) {
        return this.fail(`agent: ${(err as Error).message}`);
      }
      this.bound.agent.getRoute(modid, cmdid).then(
        (s) => {
          if (s === undefined && this.last === undefined) this.fail(`route ${modid}.${cmdid} is not registered`);
        },
        (err: unknown) => this.fail(`route ${modid}.${cmdid}: ${(err as Error).message}`),
      );
      return;
    }
    if (this.last !== undefined) this.emit(this.last);
  }

  private emit(s: RouteState): void {
    if (this.destroyed) return;
    const t = this.target!;
    if (s.removed || s.hosts.length === 0) return this.fail(`route ${t.modid}.${t.cmdid} has no host`);
    const endpoints = s.hosts.map((h) => ({ addresses: [{ host: h.ip, port: h.port }] }));
    const config: ServiceConfig = { loadBalancingConfig: [{ [LARS_PICK_POLICY]: { modid: t.modid, cmdid: t.cmdid, agent: this.agentId } }], methodConfig: [] };
    this.listener(experimental.statusOrFromValue(endpoints), {}, experimental.statusOrFromValue(config), `route ${t.modid}.${t.cmdid} version ${s.version}`);
  }

  private fail(details: string): void {
    if (this.destroyed) return;
    this.listener(experimental.statusOrFromError({ code: Status.UNAVAILABLE, details }), {}, null, details);
  }

  destroy(): void {
    this.destroyed = true;
    this.stop?.();
  }
}

// ---------------------------------------------------------------- load balancer

class LarsPickConfig implements experimental.TypedLoadBalancingConfig {
  readonly modid: number;
  readonly cmdid: number;
  readonly agent: string | undefined;

  constructor(modid: number, cmdid: number, agent: string | undefined) {
    this.modid = modid;
    this.cmdid = cmdid;
    this.agent = agent;
  }

  static createFromJson(obj: unknown): LarsPickConfig {
    const o = (typeof obj === 'object' && obj !== null ? obj : {}) as Record<string, unknown>;
    const modid = o['modid'];
    const cmdid = o['cmdid'];
    if (typeof modid !== 'number' || typeof cmdid !== 'number' || !isRouteId(modid) || !isRouteId(cmdid)) throw new Error(`${LARS_PICK_POLICY}: config needs modid and cmdid (uint32)`);
    const agent = o['agent'];
    return new LarsPickConfig(modid, cmdid, typeof agent === 'string' ? agent : undefined);
  }

  getLoadBalancerName(): string {
    return LARS_PICK_POLICY;
  }

  toJsonObject(): object {
    return { [LARS_PICK_POLICY]: { modid: this.modid, cmdid: this.cmdid, agent: this.agent } };
  }
}

function addrKey(host: string, port: number): string {
  return `${host}:${port}`;
}

/** One subchannel (pick-first leaf) per host of the route; the agent chooses among them per call. */
class LarsPickBalancer implements experimental.LoadBalancer {
  private readonly helper: experimental.ChannelControlHelper;
  private readonly childHelper: experimental.ChannelControlHelper;
  readonly children = new Map<string, experimental.LeafLoadBalancer>();
  config: LarsPickConfig | undefined;
  bound: Bound | undefined;
  private updating = false;

  constructor(helper: experimental.ChannelControlHelper) {
    this.helper = helper;
    this.childHelper = experimental.createChildChannelControlHelper(helper, { updateState: () => this.refresh() });
  }

  updateAddressList(endpointList: experimental.StatusOr<experimental.Endpoint[]>, lbConfig: experimental.TypedLoadBalancingConfig, options: ChannelOptions, note: string): boolean {
    if (!(lbConfig instanceof LarsPickConfig)) return false;
    this.config = lbConfig;
    this.bound = boundAgent(lbConfig.agent ?? options[LARS_AGENT_OPTION]);
    if (!endpointList.ok) {
      if (this.children.size === 0) this.helper.updateState(ConnectivityState.TRANSIENT_FAILURE, new experimental.UnavailablePicker(endpointList.error), endpointList.error.details);
      return true;
    }
    const seen = new Set<string>();
    this.updating = true;
    for (const ep of endpointList.value) {
      const a = ep.addresses[0];
      if (a === undefined || !('port' in a)) continue;
      const key = addrKey(a.host, a.port);
      seen.add(key);
      let child = this.children.get(key);
      if (child === undefined) {
        child = new experimental.LeafLoadBalancer(ep, this.childHelper, options, note);
        this.children.set(key, child);
        child.startConnecting();
      } else child.updateEndpoint(ep, options);
    }
    for (const [key, child] of this.children) {
      if (seen.has(key)) continue;
      child.destroy();
      this.children.delete(key);
    }
    this.updating = false;
    this.refresh();
    return true;
  }

  /** The channel's state from the children's: READY when any host is. */
  private refresh(): void {
    if (this.updating) return;
    let ready = false;
    let connecting = false;
    for (const c of this.children.values()) {
      const st = c.getConnectivityState();
      if (st === ConnectivityState.READY) ready = true;
      else if (st === ConnectivityState.CONNECTING || st === ConnectivityState.IDLE) connecting = true;
    }
    if (ready && this.bound !== undefined && this.config !== undefined) this.helper.updateState(ConnectivityState.READY, new LarsPicker(this, this.bound, this.config), null);
    else if (connecting || (ready && this.bound === undefined)) this.helper.updateState(ConnectivityState.CONNECTING, new experimental.QueuePicker(this), null);
    else this.helper.updateState(ConnectivityState.TRANSIENT_FAILURE, new experimental.UnavailablePicker({ details: 'no host of the route is reachable' }), 'no host of the route is reachable');
  }

  exitIdle(): void {
    for (const c of this.children.values()) c.exitIdle();
  }

  resetBackoff(): void {
    // the leaves reconnect with their own backoff
  }

  destroy(): void {
    for (const c of this.children.values()) c.destroy();
    this.children.clear();
  }

  getTypeName(): string {
    return LARS_PICK_POLICY;
  }
}

class LarsPicker implements experimental.Picker {
  private readonly lb: LarsPickBalancer;
  private readonly bound: Bound;
  private readonly modid: number;
  private readonly cmdid: number;

  constructor(lb: LarsPickBalancer, bound: Bound, config: LarsPickConfig) {
    this.lb = lb;
    this.bound = bound;
    this.modid = config.modid;
    this.cmdid = config.cmdid;
  }

  pick(args: experimental.PickArgs): experimental.PickResult {
    const { agent, policy, clock } = this.bound;
    const key = keyOf(args.metadata);
    let queued = false;
    for (let attempt = 0; attempt < MAX_PICK_ATTEMPTS; attempt++) {
      const h = agent.pick(this.modid, this.cmdid, key);
      if (!h.ok) return unavailable(`route ${this.modid}.${this.cmdid}: ${h.message}`);
      const child = this.lb.children.get(addrKey(h.ip, h.port));
      const st = child?.getConnectivityState();
      if (child !== undefined && st === ConnectivityState.READY) {
        const r = child.getPicker().pick(args);
        if (r.pickResultType !== experimental.PickResultType.COMPLETE) {
          agent.release(this.modid, this.cmdid, h);
          return r;
        }
        const start = clock();
        const inner = r.onCallEnded;
        let ended = false;
        return {
          ...r,
          onCallEnded: (code, details, md) => {
            if (!ended) {
              ended = true;
              const lat = clock() - start;
              agent.report(this.modid, this.cmdid, h, grpcRetcode(policy, code, lat), lat);
            }
            inner?.(code, details, md);
          },
        };
      }
      if (child === undefined) {
        // a host the channel has not been given yet (the resolver follows the same route): pick again
        agent.release(this.modid, this.cmdid, h);
        continue;
      }
      if (st === ConnectivityState.TRANSIENT_FAILURE) {
        // the agent's choice cannot be reached: that is the host's failure
        agent.report(this.modid, this.cmdid, h, connectionRetcode(policy), 0);
      } else {
        // still connecting: nothing is known of the host yet, so nothing is reported (the pick is
        // given back: no call went out); the call waits
        agent.release(this.modid, this.cmdid, h);
        child.exitIdle();
        queued = true;
      }
    }
    return queued
      ? { pickResultType: experimental.PickResultType.QUEUE, subchannel: null, status: null, onCallStarted: null, onCallEnded: null }
      : unavailable(`route ${this.modid}.${this.cmdid}: no reachable host after ${MAX_PICK_ATTEMPTS} picks`);
  }
}

function keyOf(md: Metadata): string | undefined {
  const v = md.get(LARS_KEY_METADATA)[0];
  return typeof v === 'string' ? v : undefined;
}

function unavailable(details: string): experimental.PickResult {
  return {
    pickResultType: experimental.PickResultType.TRANSIENT_FAILURE,
    subchannel: null,
    status: { code: Status.UNAVAILABLE, details, metadata: new Metadata() },
    onCallStarted: null,
    onCallEnded: null,
  };
}
