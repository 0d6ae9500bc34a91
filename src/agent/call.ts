/**
 * `agent.call`: one logical call under the route's call policy. It picks a
 * host, runs the caller's `fn(host, signal, info)`, reports the outcome with
 * its attempt mark, and on a retriable failure tries a different host, within
 * this agent's share of the route's retry budget (actors/agent-budget.ts),
 * `maxAttempts` and the call's deadline. An idempotent call is hedged: with
 * no answer after the route's hedge delay, a second attempt goes to another
 * host (within the hedge budget); the first answer wins and the other
 * attempts are aborted through their signals. While the route sheds, a share
 * of calls is refused at once. A call that gives up throws a `CallError`
 * naming why and every attempt.
 *
 * Reports: an attempt that answered or failed is reported (retcode 0, the
 * caller's classification, or -1 for a timeout); an attempt aborted because
 * another one won, or because the caller gave up, is not (the host did
 * nothing wrong): its pick is released.
 */
import { AttemptKind } from '../../schemas/contract.ts';
import type { PickedHost } from '../../actors/agent-route.ts';
import { AgentCallBudget, type AgentPolicy } from '../../actors/agent-budget.ts';
import { AttemptTimeoutError, CallError, CallStop, type AttemptRecord } from './call-error.ts';
import type { AttemptMark } from './report-batcher.ts';

export { CallError, CallStop, AttemptTimeoutError, type AttemptRecord } from './call-error.ts';

/** Retcodes `call` reports for failures without one of their own (the same as the HTTP and gRPC integrations'). */
export const CallFailure = { timeout: -1, connection: -2, error: -5 } as const;

/** What an attempt's `fn` is told. */
export interface AttemptInfo {
  readonly attempt: number;
  readonly kind: 'first' | 'retry' | 'hedge';
  /** The call's deadline, ms on the agent's clock (carry it to the callee where the protocol has a place). */
  readonly deadline: number;
  /** This attempt's own timeout, ms from its start. */
  readonly timeoutMs: number;
}

/** How a failure counts: its retcode, and whether another host may be tried. */
export interface Classified {
  readonly retcode: number;
  readonly retriable: boolean;
}

export interface CallOptions {
  /** Attempts at most, the first included (default 3, the SRE book's). */
  maxAttempts?: number;
  /** The whole call's time, ms (default `attemptTimeoutMs` × `maxAttempts`). */
  deadlineMs?: number;
  /** One attempt's time, ms (default the agent's `timeoutMs`, 1000). */
  attemptTimeoutMs?: number;
  /** The call may run twice: it may be hedged (default false). */
  idempotent?: boolean;
  /** Hedge an idempotent call (default true when `idempotent`). */
  hedge?: boolean;
  /** Hedge after this long instead of the route's hedge delay, ms (the hedge budget still holds). */
  hedgeDelayMs?: number;
  /** How a failure counts (default `classifyError`: timeouts and connection errors are retried). */
  classify?: (err: unknown) => Classified;
  /** Key for the hash strategy. */
  key?: string;
  /** The caller's signal: aborting it stops the call. */
  signal?: AbortSignal;
}

/** Connection errors by their Node and undici codes. */
const CONNECTION_CODES: ReadonlySet<string> = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'EPIPE',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ETIMEDOUT',
  'ENOTFOUND',
  'EAI_AGAIN',
  'UND_ERR_SOCKET',
  'UND_ERR_CONNECT_TIMEOUT',
  'UND_ERR_CLOSED',
]);

/**
 * The default classification: an attempt timeout or a connection error is
 * retried; an error with a numeric `retcode` is reported with it (retried when
 * it is the contract's `overloaded`, -4); anything else is reported as -5 and
 * not retried (the caller's own error, which another host would repeat).
 */
export function classifyError(err: unknown): Classified {
  if (err instanceof AttemptTimeoutError) return { retcode: CallFailure.timeout, retriable: true };
  const e = err as { code?: unknown; retcode?: unknown; cause?: { code?: unknown } } | null;
  if (e !== null && typeof e === 'object') {
    if (typeof e.retcode === 'number' && Number.isInteger(e.retcode) && e.retcode !== 0) return { retcode: e.retcode, retriable: e.retcode === -4 };
    const code = typeof e.code === 'string' ? e.code : typeof e.cause?.code === 'string' ? e.cause.code : undefined;
    if (code !== undefined && CONNECTION_CODES.has(code)) return { retcode: CallFailure.connection, retriable: true };
  }
  return { retcode: CallFailure.error, retriable: false };
}

/** Timers and clock of a call (tests inject a manual one). */
export interface CallTimers {
  now(): number;
  set(fn: () => void, ms: number): unknown;
  clear(handle: unknown): void;
}

export const REAL_TIMERS: CallTimers = {
  now: Date.now,
  set: (fn, ms) => setTimeout(fn, ms),
  clear: (h) => clearTimeout(h as ReturnType<typeof setTimeout>),
};

/** An agent's call counters (its stats and metrics). */
export interface CallCounters {
  /** Logical calls started. */
  calls: number;
  /** Attempts by kind. */
  first: number;
  retry: number;
  hedge: number;
  /** Calls that stopped without a result, by why. */
  stops: Record<CallStop, number>;
}

export function newCallCounters(): CallCounters {
  return { calls: 0, first: 0, retry: 0, hedge: 0, stops: { budget: 0, deadline: 0, shed: 0, no_host: 0, attempts: 0, not_retriable: 0, aborted: 0 } };
}

/** What a call needs of its agent. */
export interface CallDeps {
  /** Counted into; shared by the agent's routes. */
  counters: CallCounters;
  /** Picks a host of the route (loaded already), or none. */
  pick(key: string | undefined): PickedHost | undefined;
  release(host: PickedHost): void;
  report(host: PickedHost, retcode: number, latencyMs: number, mark: AttemptMark | undefined): void;
  policy(): AgentPolicy;
  budget: AgentCallBudget;
  timers: CallTimers;
  random(): number;
  /** The agent's callers' timeout, ms: the default attempt timeout. */
  timeoutMs: number;
}

/** Picks tried to find a host not tried yet. */
const PICK_TRIES = 8;

interface Attempt {
  readonly n: number;
  readonly kind: AttemptRecord['kind'];
  readonly host: PickedHost;
  readonly ctl: AbortController;
  readonly start: number;
  timer: unknown;
  done: boolean;
}

const KIND_MARK = { first: AttemptKind.first, retry: AttemptKind.retry, hedge: AttemptKind.hedge } as const;

/** One logical call under the route's policy: the result of the attempt that answered first, or a CallError. */
export function runCall<T>(modid: number, cmdid: number, deps: CallDeps, fn: (host: PickedHost, signal: AbortSignal, info: AttemptInfo) => Promise<T>, opts: CallOptions = {}): Promise<T> {
  const t = deps.timers;
  const maxAttempts = Math.max(1, Math.floor(opts.maxAttempts ?? 3));
  const attemptMs = opts.attemptTimeoutMs ?? deps.timeoutMs;
  const start = t.now();
  const deadline = start + (opts.deadlineMs ?? attemptMs * maxAttempts);
  const classify = opts.classify ?? classifyError;
  const policy = deps.policy();
  const records: AttemptRecord[] = [];
  const live: Attempt[] = [];
  const tried = new Set<string>();
  let made = 0;
  let settled = false;
  let deadlineTimer: unknown;
  let hedgeTimer: unknown;

  return new Promise<T>((resolve, reject) => {
    const finish = (): void => {
      settled = true;
      t.clear(deadlineTimer);
      t.clear(hedgeTimer);
      opts.signal?.removeEventListener('abort', onAbort);
    };
    /** Aborts every attempt still out; reported as timeouts when the deadline ended them, else released. */
    const abortAll = (timedOut: boolean): void => {
      for (const a of live.splice(0)) {
        a.done = true;
        t.clear(a.timer);
        const lat = t.now() - a.start;
        if (timedOut) {
          deps.report(a.host, CallFailure.timeout, lat, mark(a));
          records.push({ attempt: a.n, kind: a.kind, host: hostKey(a.host), outcome: 'timeout', retcode: CallFailure.timeout, latencyMs: lat });
        } else {
          deps.release(a.host);
          records.push({ attempt: a.n, kind: a.kind, host: hostKey(a.host), outcome: 'aborted', retcode: undefined, latencyMs: lat });
        }
        a.ctl.abort(timedOut ? new AttemptTimeoutError(lat) : new Error('call ended'));
      }
    };
    const fail = (reason: CallStop, detail?: string): void => {
      if (settled) return;
      deps.counters.stops[reason]++;
      abortAll(reason === CallStop.deadline);
      finish();
      reject(new CallError(modid, cmdid, reason, records, detail));
    };
    const onAbort = (): void => fail(CallStop.aborted);

    /** A host not tried yet by this call, or undefined. */
    const pickFresh = (): PickedHost | undefined => {
      for (let i = 0; i < PICK_TRIES; i++) {
        const h = deps.pick(opts.key);
        if (h === undefined) return undefined;
        if (!tried.has(hostKey(h))) return h;
        deps.release(h);
      }
      return undefined;
    };

    const launch = (kind: Attempt['kind']): boolean => {
      const host = pickFresh();
      if (host === undefined) return false;
      tried.add(hostKey(host));
      deps.counters[kind]++;
      const now = t.now();
      const timeoutMs = Math.max(0, Math.min(attemptMs, deadline - now));
      const a: Attempt = { n: ++made, kind, host, ctl: new AbortController(), start: now, timer: undefined, done: false };
      live.push(a);
      a.timer = t.set(() => settle(a, false, undefined, new AttemptTimeoutError(timeoutMs), true), timeoutMs);
      const info: AttemptInfo = { attempt: a.n, kind, deadline, timeoutMs };
      let p: Promise<T>;
      try {
        p = fn(host, a.ctl.signal, info);
      } catch (err) {
        // a synchronous throw is the attempt's failure, as a rejection is
        settle(a, false, undefined, err, false);
        return true;
      }
      p.then(
        (v) => settle(a, true, v, undefined, false),
        (err: unknown) => settle(a, false, undefined, err, false),
      );
      return true;
    };

    const settle = (a: Attempt, ok: boolean, value: T | undefined, err: unknown, timedOut: boolean): void => {
      if (a.done || settled) return;
      a.done = true;
      t.clear(a.timer);
      live.splice(live.indexOf(a), 1);
      const lat = t.now() - a.start;
      if (ok) {
        deps.report(a.host, 0, lat, mark(a));
        records.push({ attempt: a.n, kind: a.kind, host: hostKey(a.host), outcome: 'ok', retcode: 0, latencyMs: lat });
        abortAll(false);
        finish();
        resolve(value as T);
        return;
      }
      if (timedOut) a.ctl.abort(err);
      const c = timedOut ? { retcode: CallFailure.timeout, retriable: true } : classify(err);
      deps.report(a.host, c.retcode, lat, mark(a));
      records.push({ attempt: a.n, kind: a.kind, host: hostKey(a.host), outcome: timedOut ? 'timeout' : 'error', retcode: c.retcode, latencyMs: lat, error: err });
      next(c.retriable);
    };

    /** After a failure: retry, wait for an attempt still out, or give up. */
    const next = (retriable: boolean): void => {
      if (!retriable) return live.length > 0 ? undefined : fail(CallStop.notRetriable);
      if (live.length > 0) return;
      if (made >= maxAttempts) return fail(CallStop.attempts);
      if (t.now() >= deadline) return fail(CallStop.deadline);
      if (!deps.budget.takeRetry(policy, t.now())) return fail(CallStop.budget);
      if (!launch('retry')) fail(CallStop.noHost, 'no host other than those tried');
    };

    deps.counters.calls++;
    if (opts.signal?.aborted) return fail(CallStop.aborted);
    if (AgentCallBudget.shed(policy, deps.random())) return fail(CallStop.shed, `the route sheds ${Math.round(policy.shed * 100)} % of calls`);
    opts.signal?.addEventListener('abort', onAbort, { once: true });
    deadlineTimer = t.set(() => fail(CallStop.deadline), Math.max(0, deadline - start));
    deps.budget.first(start);
    if (!launch('first')) return fail(CallStop.noHost);
    const hedgeDelay = opts.hedgeDelayMs ?? policy.hedgeDelayMs;
    if (!settled && opts.idempotent === true && opts.hedge !== false && hedgeDelay !== undefined && maxAttempts > 1) {
      hedgeTimer = t.set(() => {
        if (settled || live.length === 0 || made >= maxAttempts) return;
        if (!deps.budget.takeHedge(opts.hedgeDelayMs !== undefined ? { ...policy, hedgeDelayMs: hedgeDelay } : policy, t.now())) return;
        launch('hedge');
      }, hedgeDelay);
    }
  });
}

function hostKey(h: PickedHost): string {
  return `${h.ip}:${h.port}`;
}

function mark(a: Attempt): AttemptMark | undefined {
  return a.kind === 'first' ? undefined : { attempt: a.n, kind: KIND_MARK[a.kind] };
}
