/**
 * `lars agent`: a sidecar on a service host. One process, one NATS
 * connection, one Agent (route cache, one strategy per route, report
 * batcher and outbox) shared by every local caller, whatever API it uses:
 * Lars' UDP protocol (lars-udp.ts) and the HTTP/JSON API (http-api.ts).
 * A route update is decoded once per host machine, not once per caller.
 */
import type { NatsConnection } from '@nats-io/transport-node';
import { createAgent, type Agent, type AgentOptions } from '../agent/agent.ts';
import { silentLogger, type Logger } from '../lib/log.ts';
import { HostCache, LarsUdpServer, DEFAULT_UDP_HOST, DEFAULT_UDP_PORTS, type LarsUdpStats } from './lars-udp.ts';
import { HttpApi, DEFAULT_HTTP_HOST, type HttpApiStats } from './http-api.ts';
import { RouteBudget, DEFAULT_MAX_ROUTES } from './route-budget.ts';
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
  log?: Logger;
}

export interface SidecarStats {
  udp: LarsUdpStats | undefined;
  http: HttpApiStats | undefined;
  /** Requests refused because they would have made the sidecar follow more than `maxRoutes` routes. */
  routesRefused: number;
}

export class Sidecar {
  readonly agent: Agent;
  readonly udp: LarsUdpServer | undefined;
  readonly http: HttpApi | undefined;
  private readonly budget: RouteBudget;

  private constructor(agent: Agent, udp: LarsUdpServer | undefined, http: HttpApi | undefined, budget: RouteBudget) {
    this.agent = agent;
    this.udp = udp;
    this.http = http;
    this.budget = budget;
  }

  static async start(opts: SidecarOptions): Promise<Sidecar> {
    const log = opts.log ?? silentLogger();
    const agent = await createAgent({ ...opts.agent, ...(opts.nc ? { nc: opts.nc } : { servers: opts.servers }), log });
    let udp: LarsUdpServer | undefined;
    let http: HttpApi | undefined;
    const budget = new RouteBudget(agent, opts.maxRoutes ?? DEFAULT_MAX_ROUTES);
    try {
      if (opts.udp) udp = await LarsUdpServer.start({ agent, host: opts.udp.host ?? DEFAULT_UDP_HOST, ports: opts.udp.ports ?? DEFAULT_UDP_PORTS, log, budget }, new HostCache());
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
        http = await HttpApi.start({ agent, selfReg, host: opts.http.host ?? DEFAULT_HTTP_HOST, port: opts.http.port, heartbeatMs: opts.http.heartbeatMs, extra: opts.http.extra, log, budget, health: () => ({ ...(u ? { udp: u.stats() } : {}), maxRoutes: budget.max, refusedRoutes: budget.refused }) });
      }
    } catch (err) {
      await udp?.close();
      await agent.close();
      throw err;
    }
    return new Sidecar(agent, udp, http, budget);
  }

  stats(): SidecarStats {
    return { udp: this.udp?.stats(), http: this.http?.stats(), routesRefused: this.budget.refused };
  }

  /** Stops both APIs, then the agent (its last reports are flushed, its connection closed if owned). */
  async close(): Promise<void> {
    await this.http?.close();
    await this.udp?.close();
    await this.agent.close();
  }
}
