/**
 * The xDS control plane: an Aggregated Discovery Service (state of the
 * world, v3) over gRPC serving LDS, RDS, CDS and EDS for every route, fed
 * by the route source (NATS only, so instances are interchangeable and a
 * restarted one serves the same resources). A route change is handed to
 * every stream that subscribed to it within the turn of the event loop that
 * applied it.
 *
 * A request that cannot be decoded ends its stream with INTERNAL (grpc-js
 * does that when deserialization throws) and is counted; it never reaches
 * the streams' logic or the process.
 */
import * as grpc from '@grpc/grpc-js';
import type { NatsConnection } from '@nats-io/transport-node';
import type { Names } from '../../schemas/subjects.ts';
import type { Logger } from '../lib/log.ts';
import { RateLimitedLog } from '../lib/ratelog.ts';
import { ListenError, ErrorCode } from '../lib/errors.ts';
import { xdsProtos } from './protos.ts';
import { RouteSource } from './route-source.ts';
import { AdsStream, newCounters, type DiscoveryRequest, type DiscoveryResponse, type XdsCounters } from './ads-stream.ts';
import type { XdsLbPolicy } from './resources.ts';
import { LoadReports, type LoadStatsRequest, type LoadStatsResponse, type LrsStats } from './lrs.ts';

export const ADS_PATH = '/envoy.service.discovery.v3.AggregatedDiscoveryService/StreamAggregatedResources';
export const LRS_PATH = '/envoy.service.load_stats.v3.LoadReportingService/StreamLoadStats';

/** Default port of `lars xds` (the port Istio's control plane uses for xDS over plaintext gRPC). */
export const DEFAULT_XDS_PORT = 15010;

export interface XdsServerOptions {
  nc: NatsConnection;
  names: Names;
  log: Logger;
  /** 0: any free port. */
  port: number;
  /** Default loopback; 0.0.0.0 to serve other machines. */
  host?: string;
  /** Sent to clients as `control_plane.identifier`. */
  serverId: string;
  lb?: XdsLbPolicy;
  /** Ms between two log lines of one kind (NACKs, bad requests); default 10000. */
  logIntervalMs?: number;
}

export interface XdsStats extends XdsCounters {
  streams: number;
  streamsOpened: number;
  routes: number;
  routeUpdates: number;
  /** Requests that could not be decoded. */
  malformed: number;
  /** Names asked for beyond the follow bound. */
  refusedNames: number;
  /** What LRS clients reported. */
  lrs: LrsStats;
}

/** The ADS service with its messages encoded by the Envoy protos (clients in tests use it too). */
export function adsService(): grpc.ServiceDefinition {
  const p = xdsProtos();
  const req = p.discoveryRequest;
  const res = p.discoveryResponse;
  return {
    StreamAggregatedResources: {
      path: ADS_PATH,
      requestStream: true,
      responseStream: true,
      originalName: 'streamAggregatedResources',
      requestSerialize: (o: DiscoveryRequest) => Buffer.from(req.encode(req.fromObject(o)).finish()),
      requestDeserialize: (b: Buffer) => req.toObject(req.decode(b), { longs: Number, enums: String, defaults: false, arrays: true }) as DiscoveryRequest,
      responseSerialize: (o: DiscoveryResponse) => Buffer.from(res.encode(o).finish()),
      responseDeserialize: (b: Buffer) => res.toObject(res.decode(b), { longs: Number, enums: String, defaults: false, arrays: true }) as unknown as DiscoveryResponse,
    },
  };
}

/** LRS with its messages encoded by the Envoy protos. */
export function lrsService(): grpc.ServiceDefinition {
  const p = xdsProtos();
  const req = p.loadStatsRequest;
  const res = p.loadStatsResponse;
  return {
    StreamLoadStats: {
      path: LRS_PATH,
      requestStream: true,
      responseStream: true,
      originalName: 'streamLoadStats',
      requestSerialize: (o: LoadStatsRequest) => Buffer.from(req.encode(req.fromObject(o)).finish()),
      requestDeserialize: (b: Buffer) => req.toObject(req.decode(b), { longs: Number, enums: String, defaults: false, arrays: true }) as LoadStatsRequest,
      responseSerialize: (o: LoadStatsResponse) => Buffer.from(res.encode(res.fromObject(o)).finish()),
      responseDeserialize: (b: Buffer) => res.toObject(res.decode(b), { longs: Number, defaults: false }) as LoadStatsResponse,
    },
  };
}

export class XdsServer {
  readonly port: number;
  readonly source: RouteSource;
  private readonly server: grpc.Server;
  private readonly streams = new Set<AdsStream>();
  private readonly calls = new Set<grpc.ServerDuplexStream<DiscoveryRequest, DiscoveryResponse>>();
  private readonly counters = newCounters();
  private streamsOpened = 0;
  private readonly loads: LoadReports;
  /** Requests that could not be decoded (counted by the deserializer). */
  private readonly bad: { malformed: number };

  private constructor(server: grpc.Server, port: number, source: RouteSource, bad: { malformed: number }, loads: LoadReports) {
    this.server = server;
    this.loads = loads;
    this.port = port;
    this.source = source;
    this.bad = bad;
  }

  /** Binds the port first (a taken one fails at once), then loads every route and serves. */
  static async start(o: XdsServerOptions): Promise<XdsServer> {
    const log = o.log.child({ mod: 'xds' });
    const rateLog = new RateLimitedLog(log, o.logIntervalMs ?? 10_000);
    const source = new RouteSource({ nc: o.nc, names: o.names, log: o.log, lb: o.lb });
    const server = new grpc.Server({ 'grpc.keepalive_time_ms': 30_000, 'grpc.keepalive_permit_without_calls': 1 });
    // the handlers run once the server below is made (a request needs the port bound, then a turn of the event loop)
    const ref: { self?: XdsServer; malformed: number } = { malformed: 0 };
    const base = adsService()['StreamAggregatedResources']!;
    const deserialize = base.requestDeserialize;
    const def: grpc.ServiceDefinition = {
      StreamAggregatedResources: {
        ...base,
        requestDeserialize: (b: Buffer): DiscoveryRequest => {
          try {
            return deserialize(b) as DiscoveryRequest;
          } catch (err) {
            ref.malformed++;
            rateLog.emit('warn', 'xds-malformed', { err: err instanceof Error ? err.message : String(err), bytes: b.length }, 'xds request that cannot be decoded; its stream is ended');
            throw err;
          }
        },
      },
    };
    server.addService(def, {
      StreamAggregatedResources: (call: grpc.ServerDuplexStream<DiscoveryRequest, DiscoveryResponse>) => {
        if (ref.self) ref.self.serveStream(call, o.serverId, log, rateLog);
        else call.end();
      },
    });
    const loads = new LoadReports(rateLog);
    server.addService(lrsService(), {
      StreamLoadStats: (call: grpc.ServerDuplexStream<LoadStatsRequest, LoadStatsResponse>) => {
        let first = true;
        call.on('data', (req: LoadStatsRequest) => {
          if (first) {
            first = false;
            call.write(loads.opened());
          }
          loads.add(req);
        });
        call.on('end', () => call.end());
        call.on('error', () => undefined);
      },
    });
    const host = o.host ?? '127.0.0.1';
    const port = await new Promise<number>((resolve, reject) =>
      server.bindAsync(`${host.includes(':') ? `[${host}]` : host}:${o.port}`, grpc.ServerCredentials.createInsecure(), (err, p) => {
        if (err) {
          const taken = /EADDRINUSE|address already in use/i.test(err.message);
          reject(new ListenError(taken ? ErrorCode.portInUse : ErrorCode.listen, `--xds-port ${o.port} on ${host}: ${taken ? 'taken by another process' : err.message}`, { port: o.port, host }, { cause: err }));
        } else resolve(p);
      }),
    );
    const self = new XdsServer(server, port, source, ref, loads);
    ref.self = self;
    source.onChange((name) => {
      for (const s of self.streams) s.onRouteChange(name);
    });
    try {
      await source.start();
    } catch (err) {
      source.close();
      server.forceShutdown();
      throw err;
    }
    log.info({ port, host, routes: source.size() }, `xds (ADS, v3) on ${host}:${port}`);
    return self;
  }

  /** The first full view of the routes is in. */
  ready(): boolean {
    return this.source.ready();
  }

  stats(): XdsStats {
    return {
      ...this.counters,
      rejected: { ...this.counters.rejected },
      streams: this.streams.size,
      streamsOpened: this.streamsOpened,
      routes: this.source.size(),
      routeUpdates: this.source.updates,
      malformed: this.bad.malformed,
      refusedNames: this.source.refused,
      lrs: this.loads.stats(),
    };
  }

  /**
   * Ends every stream and closes every connection at once (clients
   * reconnect, to this server or another, and keep what they were sent
   * meanwhile): a graceful shutdown would wait for clients that hold their
   * connections idle for as long as they live.
   */
  async close(): Promise<void> {
    for (const c of this.calls) c.end();
    this.source.close();
    this.server.forceShutdown();
    await Promise.resolve();
  }

  private serveStream(call: grpc.ServerDuplexStream<DiscoveryRequest, DiscoveryResponse>, serverId: string, log: Logger, rateLog: RateLimitedLog): void {
    const stream = new AdsStream({ source: this.source, counters: this.counters, serverId, log, rateLog, send: (r) => void call.write(r) });
    this.streams.add(stream);
    this.calls.add(call);
    this.streamsOpened++;
    const done = (): void => {
      this.streams.delete(stream);
      this.calls.delete(call);
    };
    call.on('data', (req: DiscoveryRequest) => {
      try {
        stream.onRequest(req);
      } catch (err) {
        rateLog.emit('error', 'xds-request', { err, node: stream.nodeId }, 'xds request failed');
      }
    });
    call.on('end', () => {
      done();
      call.end();
    });
    call.on('cancelled', done);
    call.on('error', done);
    call.on('close', done);
  }
}
