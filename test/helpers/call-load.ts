/**
 * An open-loop load of calls under the call policy in real time, as the
 * simulator's callers with a scenario's `call` make them (src/sim/calls.ts):
 * calls arrive at a rate (Poisson), each one is a logical call of the HTTP
 * integration's `call()` (picks, retries on another host within the route's
 * budget, sheds while the route sheds, reports every attempt). Counts per
 * 1 s bucket of call start time, as the simulator's call figures do. Runs in
 * caller processes (call-caller.ts).
 */
import { CallError } from '../../src/agent/agent.ts';
import type { Agent } from '../../src/agent/agent.ts';
import { classifyHttp, createHttpClient } from '../../src/integrations/http.ts';
import type { CallerRoute } from './scenario-calls.ts';

/** What a caller process of calls is told on its command line (JSON). */
export interface CallCallerConfig extends CallerRoute {
  /** One attempt's timeout, ms (the agent's timeoutMs; the deadline is this × maxAttempts). */
  attemptTimeoutMs: number;
  maxAttempts: number;
  /** The calls are idempotent: hedged after the route's hedge delay. */
  idempotent?: boolean;
  /** The load's length, ms; absent: until told to stop. */
  durationMs?: number;
  /** Batches leave after this long, ms (the SDK's default 20). */
  batchMaxDelayMs?: number;
}

/** The load's counts, and what the caller's agent holds of the route, at one moment. */
export interface CallLoadCounts {
  /** Logical calls started, answered (successful), failed. */
  calls: number;
  ok: number;
  failed: number;
  /** Attempts made by the calls that ended (a shed call makes none). */
  attempts: number;
  /** Failed calls by why they stopped (CallStop). */
  stops: Record<string, number>;
  /** Per 1 s bucket of call start time: logical calls ended, their attempts, the failed ones. */
  logical: number[];
  attemptsPer: number[];
  failedPer: number[];
  /** The agent's own counts of `call()` (agent.stats().calls): attempts by kind. */
  first: number;
  retry: number;
  hedge: number;
  /** From the load's first call to now, ms (an upper bound on the age of the agent's call budget). */
  spanMs: number;
  /** The route state the agent holds: version and call-policy fields. */
  route: { version: number; shed: number; retryBudget?: number; retryFloor?: number };
}

export interface CallLoad {
  /** The counts now. */
  snapshot(): Promise<CallLoadCounts>;
  /** Stops the arrivals (when running until told to) and resolves once every call ended. */
  stop(): Promise<CallLoadCounts>;
  /** Resolves once the load ended (its duration, or `stop`) and every call ended. */
  readonly done: Promise<CallLoadCounts>;
}

const inc = (arr: number[], i: number, by = 1): void => {
  while (arr.length <= i) arr.push(0);
  arr[i]! += by;
};

/** Runs the load on `agent` from `startAt` (epoch ms: the scenario's time 0). */
export function runCallLoad(agent: Agent, cfg: CallCallerConfig, startAt: number): CallLoad {
  const client = createHttpClient(agent, { timeoutMs: cfg.attemptTimeoutMs, policy: { maxAttempts: cfg.maxAttempts, idempotent: cfg.idempotent === true } });
  const target = `lars://${cfg.modid}.${cfg.cmdid}/`;
  const c = { calls: 0, ok: 0, failed: 0, attempts: 0, stops: {} as Record<string, number>, logical: [] as number[], attemptsPer: [] as number[], failedPer: [] as number[] };
  const endAt = cfg.durationMs === undefined ? Infinity : startAt + cfg.durationMs;
  const meanGapMs = 1000 / cfg.ratePerS;
  let firstCallAt: number | undefined;
  let next = startAt;
  let outstanding = 0;
  let arriving = true;
  let timer: NodeJS.Timeout | undefined;
  let resolve!: () => void;
  const ended = new Promise<void>((r) => (resolve = r));

  const snapshot = async (): Promise<CallLoadCounts> => {
    const s = agent.stats().calls;
    const r = await agent.getRoute(cfg.modid, cfg.cmdid);
    const route = { version: r?.version ?? 0, shed: r?.shed ?? 0 } as CallLoadCounts['route'];
    if (r?.retry_budget !== undefined) route.retryBudget = r.retry_budget;
    if (r?.retry_floor !== undefined) route.retryFloor = r.retry_floor;
    return { ...c, stops: { ...c.stops }, logical: [...c.logical], attemptsPer: [...c.attemptsPer], failedPer: [...c.failedPer], first: s.first, retry: s.retry, hedge: s.hedge, spanMs: firstCallAt === undefined ? 0 : Date.now() - firstCallAt, route };
  };

  const settle = (): void => {
    if (!arriving && outstanding === 0) resolve();
  };

  const call = async (startedAt: number): Promise<void> => {
    const b = Math.floor((startedAt - startAt) / 1000);
    c.calls++;
    let failedAttempts = 0;
    // every failed attempt is classified once: a successful call's attempts are its failed ones + 1
    const classify = (err: unknown): ReturnType<typeof classifyHttp> => {
      failedAttempts++;
      return classifyHttp(err);
    };
    let made: number;
    try {
      await client.call(target, { policy: { classify } });
      c.ok++;
      made = failedAttempts + 1;
    } catch (err) {
      // anything but a CallError is the load's own failure: counted apart, so that a test sees it
      const reason = err instanceof CallError ? err.reason : 'unexpected';
      c.failed++;
      c.stops[reason] = (c.stops[reason] ?? 0) + 1;
      inc(c.failedPer, b);
      made = err instanceof CallError ? err.attempts.length : failedAttempts;
    }
    c.attempts += made;
    inc(c.logical, b);
    inc(c.attemptsPer, b, made);
    outstanding--;
    settle();
  };

  const arrive = (): void => {
    timer = undefined;
    const now = Date.now();
    while (arriving && next <= now && next < endAt) {
      firstCallAt ??= now;
      outstanding++;
      void call(next);
      next += -meanGapMs * Math.log(1 - Math.random());
    }
    if (next >= endAt) arriving = false;
    if (!arriving) return settle();
    timer = setTimeout(arrive, next - now);
  };
  timer = setTimeout(arrive, Math.max(0, startAt - Date.now()));

  const done = ended.then(async () => {
    await client.close();
    return snapshot();
  });
  return {
    snapshot,
    stop: () => {
      arriving = false;
      if (timer !== undefined) clearTimeout(timer);
      settle();
      return done;
    },
    done,
  };
}
