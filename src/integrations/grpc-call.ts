/**
 * gRPC calls under the route's call policy (`agent.call`, docs/calls.md):
 * each attempt goes to the host the agent picked, through a client of that
 * host's own (made once per host by the caller's factory), with the
 * attempt's time as its gRPC deadline (carried to the server as
 * `grpc-timeout`, so that it stops working for a caller that gave up), and is
 * cancelled when the attempt is aborted (a hedge that lost, the deadline).
 *
 *   const caller = createGrpcCaller(agent, (address) => new EchoClient(address, credentials.createInsecure()));
 *   const res = await caller.call(1, 2, (c, options, done) => c.hello(req, options, done), { idempotent: true });
 *
 * Failures by status: UNAVAILABLE (the host is away) is retried on another
 * host, RESOURCE_EXHAUSTED is reported as overloaded (-4: ejects nothing)
 * and retried, DEADLINE_EXCEEDED is a timeout (-1) and retried; any other
 * status is reported as the failure policy says (outcome.ts) and not retried.
 * The `lars:///` channel of ./grpc.ts is the other way to call a route: one
 * pick per call inside grpc-js, no retries of ours.
 */
import { status as Status, type CallOptions as GrpcCallOptions, type Client, type ClientUnaryCall, type ServiceError } from '@grpc/grpc-js';
import type { Agent, CallOptions, Classified } from '../agent/agent.ts';
import { grpcRetcode, resolveFailurePolicy, type FailurePolicy, type ResolvedFailurePolicy } from './outcome.ts';

/** Starts one unary call on `client` with `options` (its deadline); `done` gets its answer. */
export type UnaryInvoke<C, T> = (client: C, options: GrpcCallOptions, done: (err: ServiceError | null, res?: T) => void) => ClientUnaryCall;

export interface GrpcCallerOptions {
  /** What counts as a failure for the statuses not retried (defaults in outcome.ts). */
  failure?: Partial<FailurePolicy>;
  /** The call policy of every call (a call's own options override it field by field). */
  policy?: CallOptions;
}

/** How a gRPC failure counts (see the top of this file). */
export function classifyGrpc(failure: ResolvedFailurePolicy, err: unknown): Classified {
  const code = (err as { code?: unknown } | null)?.code;
  if (code === Status.UNAVAILABLE) return { retcode: Status.UNAVAILABLE, retriable: true };
  if (code === Status.RESOURCE_EXHAUSTED) return { retcode: -4, retriable: true };
  if (code === Status.DEADLINE_EXCEEDED) return { retcode: -1, retriable: true };
  if (typeof code === 'number') return { retcode: grpcRetcode(failure, code, 0), retriable: false };
  return { retcode: -5, retriable: false };
}

export class GrpcCaller<C extends Client> {
  private readonly agent: Agent;
  private readonly make: (address: string) => C;
  private readonly clients = new Map<string, C>();
  private readonly failure: ResolvedFailurePolicy;
  private readonly policy: CallOptions;

  constructor(agent: Agent, make: (address: string) => C, opts: GrpcCallerOptions = {}) {
    this.agent = agent;
    this.make = make;
    this.failure = resolveFailurePolicy(opts.failure);
    this.policy = opts.policy ?? {};
  }

  /** One logical unary call on route (modid, cmdid) under the call policy; rejects with a CallError listing every attempt. */
  call<T>(modid: number, cmdid: number, invoke: UnaryInvoke<C, T>, opts: CallOptions = {}): Promise<T> {
    const policy: CallOptions = { classify: (err) => classifyGrpc(this.failure, err), ...this.policy, ...opts };
    return this.agent.call(
      modid,
      cmdid,
      (host, signal, info) =>
        new Promise<T>((resolve, reject) => {
          const client = this.clientFor(`${host.ip}:${host.port}`);
          const call = invoke(client, { deadline: Date.now() + Math.max(1, info.timeoutMs) }, (err, res) => (err ? reject(err) : resolve(res as T)));
          signal.addEventListener('abort', () => call.cancel(), { once: true });
        }),
      policy,
    );
  }

  private clientFor(address: string): C {
    let c = this.clients.get(address);
    if (c === undefined) {
      c = this.make(address);
      this.clients.set(address, c);
    }
    return c;
  }

  /** Closes the clients it made (the agent stays open). */
  close(): void {
    for (const c of this.clients.values()) c.close();
    this.clients.clear();
  }
}

/** A caller of routes over gRPC, one client per host made by `make(address)`. */
export function createGrpcCaller<C extends Client>(agent: Agent, make: (address: string) => C, opts: GrpcCallerOptions = {}): GrpcCaller<C> {
  return new GrpcCaller(agent, make, opts);
}
