/**
 * A real test cluster: nats-server (JetStream) started per suite, a route
 * node, a registry client, agents, and an event collector, each test on its
 * own subject prefix.
 */
import { randomBytes } from 'node:crypto';
import { startNatsServer, type NatsServer } from '../../src/nats/natsd.ts';
import { connectNats, type NatsConnection } from '../../src/nats/connect.ts';
import { RouteNode, type RouteNodeOptions } from '../../src/node/route-node.ts';
import { Registry } from '../../src/registry/registry.ts';
import { createAgent, type Agent, type AgentOptions } from '../../src/agent/agent.ts';
import { names, type Names } from '../../schemas/subjects.ts';
import { tryDecode } from '../../schemas/codec.ts';
import { validateRouteEvent, validateRouteState } from '../../schemas/messages.ts';
import type { RegistryHost, RouteEvent, RouteState, Profile } from '../../schemas/messages.ts';
import { createLogger } from '../../src/lib/log.ts';
import { ensureStreams } from '../../src/nats/streams.ts';
import { waitForEvent } from './wait.ts';

export const PARTITIONS = 8;
/** Small streams per test prefix: the server reserves max_bytes up front. */
export const TEST_CLUSTER_STREAM_LIMITS = { reports: { maxBytes: 64 * 2 ** 20 }, events: { maxBytes: 16 * 2 ** 20 } };

export function uniquePrefix(): string {
  return `t${randomBytes(4).toString('hex')}`;
}

export function hosts(n: number, base = '10.0.0.', port = 8000, weight = 100): RegistryHost[] {
  return Array.from({ length: n }, (_, i) => ({ ip: `${base}${i + 1}`, port, weight }));
}

export class Collector<T> {
  readonly items: T[] = [];
  private readonly listeners = new Set<(v: T) => void>();
  push(v: T): void {
    this.items.push(v);
    for (const l of this.listeners) l(v);
  }
  /** For waitForEvent: replays what arrived already, then follows. */
  subscribe = (l: (v: T) => void): (() => void) => {
    this.listeners.add(l);
    for (const v of [...this.items]) l(v);
    return () => this.listeners.delete(l);
  };
}

export class TestCluster {
  server!: NatsServer;
  nc!: NatsConnection;
  prefix = uniquePrefix();
  n!: Names;
  registry!: Registry;
  node: RouteNode | undefined;
  private nodeNc: NatsConnection | undefined;
  readonly agents: Agent[] = [];
  readonly extra: NatsConnection[] = [];
  readonly events = new Collector<RouteEvent>();
  readonly states = new Collector<RouteState>();

  static async start(server?: NatsServer): Promise<TestCluster> {
    const c = new TestCluster();
    c.server = server ?? (await startNatsServer());
    c.n = names(c.prefix);
    c.nc = await connectNats({ url: c.server.url, name: 'test' });
    c.registry = await Registry.open(c.nc, c.n);
    // As `lars node` does at start: agents' acknowledged report publishes need the REPORTS stream.
    await ensureStreams(c.nc, c.n, TEST_CLUSTER_STREAM_LIMITS);
    // Only valid messages are collected: tests flood these subjects with garbage too.
    c.nc.subscribe(c.n.eventAll, {
      callback: (_e, m) => {
        const d = tryDecode(m.data);
        const v = d.ok ? validateRouteEvent(d.value) : undefined;
        if (v?.ok) c.events.push(v.value);
      },
    });
    c.nc.subscribe(c.n.routeAll, {
      callback: (_e, m) => {
        const d = tryDecode(m.data);
        const v = d.ok ? validateRouteState(d.value) : undefined;
        if (v?.ok) c.states.push(v.value);
      },
    });
    await c.nc.flush();
    return c;
  }

  async startNode(opts: Partial<RouteNodeOptions> = {}): Promise<RouteNode> {
    this.nodeNc = await connectNats({ url: this.server.url, name: 'node' });
    const log = process.env['LARS_TEST_LOG'] ? createLogger({ level: process.env['LARS_TEST_LOG'], node: 'node' }) : undefined;
    this.node = await RouteNode.start({ nc: this.nodeNc, nodeId: `node-${randomBytes(2).toString('hex')}`, prefix: this.prefix, partitions: PARTITIONS, tickMs: 25, log, ...opts });
    return this.node;
  }

  async stopNode(): Promise<void> {
    await this.node?.close();
    await this.nodeNc?.drain().catch(() => undefined);
    this.node = undefined;
  }

  async addRoute(modid: number, cmdid: number, hs: RegistryHost[], profile: Profile = 'default', params: Record<string, number> = {}): Promise<void> {
    await this.registry.addHosts(modid, cmdid, hs, 'test', { profile, params });
  }

  /** Registers route (modid, cmdid) over servers on loopback (weight 100 each) and waits for its first published state. */
  async addLoopbackRoute(modid: number, cmdid: number, servers: ReadonlyArray<{ port: number }>): Promise<RouteState> {
    await this.addRoute(
      modid,
      cmdid,
      servers.map((s) => ({ ip: '127.0.0.1', port: s.port, weight: 100 })),
    );
    return this.published(modid, cmdid);
  }

  /** The next state of route (modid, cmdid) the node publishes (or the one the collector holds, as `waitForEvent` takes it). */
  published(modid: number, cmdid: number): Promise<RouteState> {
    return waitForEvent<RouteState>(this.states.subscribe, (s) => s.modid === modid && s.cmdid === cmdid, { what: 'route published' });
  }

  async agent(opts: Partial<AgentOptions> = {}): Promise<Agent> {
    const a = await createAgent({ servers: opts.servers ?? this.server.url, prefix: this.prefix, partitions: PARTITIONS, batchMaxDelayMs: 5, ...opts });
    this.agents.push(a);
    return a;
  }

  async connection(): Promise<NatsConnection> {
    const nc = await connectNats({ url: this.server.url, name: 'extra' });
    this.extra.push(nc);
    return nc;
  }

  /** Latest published state of a route (from the subject collector). */
  latest(modid: number, cmdid: number): RouteState | undefined {
    let best: RouteState | undefined;
    for (const s of this.states.items) if (s.modid === modid && s.cmdid === cmdid && (!best || s.version > best.version)) best = s;
    return best;
  }

  async stop(keepServer = false): Promise<void> {
    for (const a of this.agents) await a.close().catch(() => undefined);
    await this.stopNode();
    for (const nc of this.extra) await nc.close().catch(() => undefined);
    await this.nc.close().catch(() => undefined);
    if (!keepServer) await this.server.stop();
  }
}

/** Mocha hooks: one nats-server (JetStream) for the suite, stopped after it. Returns an accessor. */
export function useNatsServer(): () => NatsServer {
  let server: NatsServer;
  before(async () => {
    server = await startNatsServer();
  });
  after(async () => {
    await server.stop();
  });
  return () => server;
}

/**
 * Mocha hooks for a suite: one nats-server for the suite, a fresh cluster
 * (own prefix, route node started) per test. Returns an accessor for the
 * current test's cluster.
 */
export function useCluster(nodeOpts: Partial<RouteNodeOptions> = {}): () => TestCluster {
  const server = useNatsServer();
  let c: TestCluster;
  beforeEach(async () => {
    c = await TestCluster.start(server());
    await c.startNode(nodeOpts);
  });
  afterEach(async () => {
    await c.stop(true);
  });
  return () => c;
}
