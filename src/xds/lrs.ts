/**
 * LRS (envoy.service.load_stats.v3): what xDS clients say of the load they
 * sent, accepted and counted. Clusters name this server as their LRS server
 * (`lrs_server: { self: {} }`), so a gRPC client reports every interval, per
 * cluster and locality, how many calls succeeded, failed, were in flight or
 * were dropped.
 *
 * What that can honestly say: a route's calls and failures per caller zone,
 * not per host (gRPC sends no per-endpoint figures), so it cannot judge a
 * host and is not fed to the route actors; it is kept as counters (per
 * route, the totals) for the metrics. Hosts are judged on what they report
 * themselves (src/integrations/grpc-server.ts) and on agents' reports.
 */
import type { RateLimitedLog } from '../lib/ratelog.ts';
import { parseResourceName } from './resources.ts';

/** A LoadStatsRequest as decoded (longs as numbers). */
export interface LoadStatsRequest {
  node?: { id?: string } | null;
  cluster_stats?: Array<{
    cluster_name?: string;
    upstream_locality_stats?: Array<{
      locality?: { zone?: string } | null;
      total_successful_requests?: number;
      total_error_requests?: number;
      total_issued_requests?: number;
    }>;
    total_dropped_requests?: number;
  }>;
}

export interface LoadStatsResponse {
  send_all_clusters: boolean;
  load_reporting_interval: { seconds: number; nanos?: number };
}

/** Totals of what LRS clients reported. */
export interface LrsStats {
  streams: number;
  reports: number;
  succeeded: number;
  failed: number;
  dropped: number;
  /** Cluster stats of clusters that are not routes' (`lars-<modid>-<cmdid>`). */
  unknownClusters: number;
}

/** How often clients report, s. */
export const LRS_INTERVAL_S = 1;

export class LoadReports {
  private readonly totals: LrsStats = { streams: 0, reports: 0, succeeded: 0, failed: 0, dropped: 0, unknownClusters: 0 };
  private readonly rateLog: RateLimitedLog;

  constructor(rateLog: RateLimitedLog) {
    this.rateLog = rateLog;
  }

  /** A new LRS stream: the response that asks for every cluster's figures every interval. */
  opened(): LoadStatsResponse {
    this.totals.streams++;
    return { send_all_clusters: true, load_reporting_interval: { seconds: LRS_INTERVAL_S } };
  }

  /** One report of a client. */
  add(req: LoadStatsRequest): void {
    this.totals.reports++;
    for (const c of req.cluster_stats ?? []) {
      if (parseResourceName(c.cluster_name ?? '') === undefined) {
        this.totals.unknownClusters++;
        this.rateLog.emit('warn', 'lrs-cluster', { node: req.node?.id, cluster: String(c.cluster_name).slice(0, 200) }, 'load report for a cluster that is not a route; ignored');
        continue;
      }
      this.totals.dropped += num(c.total_dropped_requests);
      for (const l of c.upstream_locality_stats ?? []) {
        this.totals.succeeded += num(l.total_successful_requests);
        this.totals.failed += num(l.total_error_requests);
      }
    }
  }

  stats(): LrsStats {
    return { ...this.totals };
  }
}

/** A count from the wire: a finite number ≥ 0, anything else 0. */
function num(v: unknown): number {
  const n = typeof v === 'number' ? v : typeof v === 'string' ? Number(v) : 0;
  return Number.isFinite(n) && n > 0 ? n : 0;
}
