/**
 * The server side of the gRPC integration: a grpc-js server interceptor
 * through which a host reports every call it answered, for callers that
 * report nothing themselves (proxyless gRPC over xDS, Envoy, any client
 * without the SDK). Give it an agent made with `side: 'server'`: its report
 * batches say they come from the host (the contract's `side`), so the route
 * actor judges the host on what it served and the analytics can tell the
 * two kinds of reports apart.
 *
 * What a host can say of itself is less than what its callers can: a call
 * that never reached it (connection refused, a host that hangs before
 * answering, a network fault) is never reported here. The status it
 * answered with and the time it took are: counted as the client-side
 * integrations count them (outcome.ts).
 *
 *   const agent = await createAgent({ servers, side: 'server' });
 *   const server = new grpc.Server({ interceptors: [servedReporter({ reporter: agent, modid: 1, cmdid: 1, host: { ip, port } })] });
 */
import { performance } from 'node:perf_hooks';
import { ServerInterceptingCall, type ServerInterceptor } from '@grpc/grpc-js';
import { grpcRetcode, resolveFailurePolicy, type FailurePolicy } from './outcome.ts';

/** Where served calls are reported: an Agent (made with `side: 'server'`). */
export interface ServedReporter {
  report(modid: number, cmdid: number, host: { ip: string; port: number }, retcode: number, latencyMs: number): void;
}

export interface ServedReporterOptions {
  reporter: ServedReporter;
  /** The route this server is a host of. */
  modid: number;
  cmdid: number;
  /** This server's address as the route's registry lists it. */
  host: { ip: string; port: number };
  /** Which statuses count as failures (defaults as on the client side). */
  failure?: Partial<FailurePolicy>;
  /** Which methods are reported; default every one. */
  methods?: (path: string) => boolean;
  /** Milliseconds, monotonic; default performance.now. */
  clock?: () => number;
}

/** A server interceptor reporting each call's status and time when the server sends its status. */
export function servedReporter(o: ServedReporterOptions): ServerInterceptor {
  const policy = resolveFailurePolicy(o.failure);
  const now = o.clock ?? (() => performance.now());
  const host = { ip: o.host.ip, port: o.host.port };
  return (method, call) => {
    if (o.methods && !o.methods(method.path)) return new ServerInterceptingCall(call);
    const start = now();
    return new ServerInterceptingCall(call, {
      sendStatus: (status, next) => {
        const latency = Math.max(0, now() - start);
        o.reporter.report(o.modid, o.cmdid, host, grpcRetcode(policy, status.code ?? 0, latency), latency);
        next(status);
      },
    });
  };
}
