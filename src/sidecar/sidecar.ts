/**
 * `lars agent`: a sidecar on a service host. One process, one NATS
 * connection, one Agent (route cache, one strategy per route, report
 * batcher and outbox) shared by every local caller, whatever API it uses:
 * Lars' UDP protocol (lars-udp.ts) and the HTTP/JSON API (http-api.ts).
 * A route update is decoded once per host machine, not once per caller.
 * With `threads` above 1 the UDP ports are served by that many threads
 * (udp-threads.ts), each picking from a mirror of the agent's routes; the
 * agent, its connection and the HTTP API stay in this thread.
 */
import type { NatsConnection } from '@nats-io/transport-node';
import { createAgent, type Agent, type AgentOptions } from '../agent/agent.ts';
import { resolveAgentOptions } from '../agent/options.ts';
import { silentLogger, type Logger } from '../lib/log.ts';
import { HostCache, LarsUdpServer, DEFAULT_UDP_HOST, DEFAULT_UDP_PORTS, type LarsUdpStats } from './lars-udp.ts';
import { HttpApi, DEFAULT_HTTP_HOST, type HttpApiStats } from './http-api.ts';
import { RouteBudget, DEFAULT_MAX_ROUTES } from './route-budget.ts';
import { UdpThreads } from './udp-threads.ts';
import { SelfRegWriter } from '../agent/self-register.ts';
import type { ExtraHandler } from '../metrics/http.ts';

export interface SidecarOptions {
  /** An open connection (not closed by the sidecar), or... */
  nc?: NatsConnection;
  /** ...URL(s) to connect to (the sidecar owns that connection). */
  servers?: string;
  /** Agent options (prefix, partitions, strategy, zone, agentId, ...). */
  agent?: Omit<AgentOptions, 'nc' | 'servers' | 'log'>;
  /** Lars' UDP protocol; undefined = off. Port 0 = any free port. */
  udp?: { host?: string; ports?: readonly number[] } | undefined;
  /** The HTTP API; undefined = off. Port 0 = any free port. `extra` serves further paths (`/metrics`, `/readyz`). */
  http?: { host?: string; port: number; heartbeatMs?: number; extra?: ExtraHandler } | undefined;
  /** Routes local callers may make the sidecar follow (default 10000); beyond, new routes are refused. */
  maxRoutes?: number;
  /** Threads serving the UDP ports (default 1: this thread serves them); the CLI's default is the number of cores. */
  threads?: number;
  log?: Logger;
}

export interface SidecarStats {
  udp: LarsUdpStats | undefined;
  http: HttpApiStats | undefined;
  /** Requests refused because they would have made the sidecar follow more than `maxRoutes` routes. */
  routesRefused: number;
  /** Picks made by the UDP threads (with `threads` above 1; the agent's stats count the picks of this thread). */
  threadPicks?: number;
}

/** What serves the UDP ports: this thread's server, or several threads. */
export interface UdpService {
  ports(): number[];
  stats(): LarsUdpStats;
  close(): Promise<void>;
}

export class Sidecar {
  readonly agent: Agent;
  readonly udp: UdpService | undefined;
  readonly http: HttpApi | undefined;
  private readonly budget: RouteBudget;

  private constructor(agent: Agent, udp: UdpService | undefined, http: HttpApi | undefined, budget: RouteBudget) {
    this.agent = agent;
    this.udp = udp;
    this.http = http;
    this.budget = budget;
  }

  static async start(opts: SidecarOptions): Promise<Sidecar> {
    const log = opts.log ?? silentLogger();
    const agent = await createAgent({ ...opts.agent, ...(opts.nc ? { nc: opts.nc } : { servers: opts.servers }), log });
    let udp: UdpService | undefined;
    let http: HttpApi | undefined;
    const budget = new RouteBudget(agent, opts.maxRoutes ?? DEFAULT_MAX_ROUTES);
    const threads = opts.threads ?? 1;
    try {
      if (!(Number.isInteger(threads) && threads >= 1)) throw new RangeError(`threads must be a whole number from 1, got ${threads}`);
      if (opts.udp) {
        const host = opts.udp.host ?? DEFAULT_UDP_HOST;
        const ports = opts.udp.ports ?? DEFAULT_UDP_PORTS;
        if (threads === 1) udp = await LarsUdpServer.start({ agent, host, ports, log, budget }, new HostCache());
        else {
          const o = resolveAgentOptions({ ...opts.agent, agentId: agent.id });
          const pick = { agentId: agent.id, strategy: o.strategy, pickZone: o.pickZone, zoneMinHealthyPercent: o.zoneMinHealthyPercent, feedback: o.feedback, probeTrials: o.probeTrials };
          udp = await UdpThreads.start({ agent, budget, pick, threads, host, ports, log });
        }
      }
      if (opts.http) {
        const u = udp;
        // the self-registration bucket is opened on the first registration (a route node may start after the sidecar)
        let writer: Promise<SelfRegWriter> | undefined;
        const selfReg = (): Promise<SelfRegWriter> => {
          if (writer === undefined) {
            const w = SelfRegWriter.open(agent.connection, opts.agent?.prefix);
            // a failed open is tried again by the next registration
            w.catch(() => {
              if (writer === w) writer = undefined;
            });
            writer = w;
          }
          return writer;
        };
        http = await HttpApi.start({ agent, selfReg, host: opts.http.host ?? DEFAULT_HTTP_HOST, port: opts.http.port, heartbeatMs: opts.http.heartbeatMs, extra: opts.http.extra, log, budget, health: () => {
            // with UDP threads: their picks in the agent's stats, their refusals in the bound's
            const t = u instanceof UdpThreads ? u : undefined;
            const a = t ? agent.stats() : undefined;
            return { ...(u ? { udp: u.stats() } : {}), ...(t && a ? { agent: { ...a, picks: a.picks + t.picks() } } : {}), maxRoutes: budget.max, refusedRoutes: budget.refused + (t?.refused() ?? 0) };
          },
        });
      }
    } catch (err) {
      await udp?.close();
      await agent.close();
      throw err;
    }
    return new Sidecar(agent, udp, http, budget);
  }

  stats(): SidecarStats {
    const t = this.udp instanceof UdpThreads ? this.udp : undefined;
    return { udp: this.udp?.stats(), http: this.http?.stats(), routesRefused: this.budget.refused + (t?.refused() ?? 0), ...(t ? { threadPicks: t.picks() } : {}) };
  }

  /**
   * Every report taken so far sent and acknowledged (as the agent's `flush`,
   * its options the same), after the UDP threads, if any, handed theirs over.
   */
  async flush(opts: { timeoutMs?: number } = {}): Promise<void> {
    if (this.udp instanceof UdpThreads) await this.udp.flushReports();
    await this.agent.flush(opts);
  }

  /** Stops both APIs, then the agent (its last reports are flushed, its connection closed if owned). */
  async close(): Promise<void> {
    await this.http?.close();
    await this.udp?.close();
    await this.agent.close();
  }
}
