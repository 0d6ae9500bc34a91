/**
 * The server side of the HTTP integration: wraps a node:http (or http2
 * compatibility) request listener so that the host reports every request it
 * answered, for callers that report nothing themselves. As with the gRPC
 * interceptor (grpc-server.ts), give it an agent made with `side: 'server'`.
 * A request whose connection closed before the answer was sent is
 * reported as a connection failure when the policy counts those.
 *
 *   const agent = await createAgent({ servers, side: 'server' });
 *   http.createServer(reportServed(handler, { reporter: agent, modid: 1, cmdid: 1, host: { ip, port } }));
 */
import { performance } from 'node:perf_hooks';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { connectionRetcode, httpRetcode, resolveFailurePolicy, type FailurePolicy } from './outcome.ts';
import type { ServedReporter } from './grpc-server.ts';

export interface HttpServedOptions {
  reporter: ServedReporter;
  /** The route this server is a host of. */
  modid: number;
  cmdid: number;
  /** This server's address as the route's registry lists it. */
  host: { ip: string; port: number };
  /** Which answers count as failures (defaults as on the client side). */
  failure?: Partial<FailurePolicy>;
  /** Which requests are reported; default every one. */
  requests?: (req: IncomingMessage) => boolean;
  /** Milliseconds, monotonic; default performance.now. */
  clock?: () => number;
}

type Listener<Req extends IncomingMessage, Res extends ServerResponse> = (req: Req, res: Res) => void;

/** `listener`, reporting each request's status and time once its answer is sent (or its connection lost). */
export function reportServed<Req extends IncomingMessage, Res extends ServerResponse>(listener: Listener<Req, Res>, o: HttpServedOptions): Listener<Req, Res> {
  const policy = resolveFailurePolicy(o.failure);
  const now = o.clock ?? (() => performance.now());
  const host = { ip: o.host.ip, port: o.host.port };
  return (req, res) => {
    if (!o.requests || o.requests(req)) {
      const start = now();
      let done = false;
      const report = (retcode: (latency: number) => number): void => {
        if (done) return;
        done = true;
        const latency = Math.max(0, now() - start);
        o.reporter.report(o.modid, o.cmdid, host, retcode(latency), latency);
      };
      res.once('finish', () => report((latency) => httpRetcode(policy, res.statusCode, latency)));
      res.once('close', () => report(() => connectionRetcode(policy)));
    }
    listener(req, res);
  };
}
