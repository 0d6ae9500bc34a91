/**
 * A scenario's open-loop callers in real time, as the simulator's callers
 * behave in virtual time (src/sim/engine.ts): calls arrive at a rate
 * (Poisson), each picks a host through the agent, calls it over HTTP, and
 * reports the outcome; the caller gives up at its timeout, aborts the
 * request, and reports the call as an error with latency = the timeout, at
 * that moment. Runs in the test process and in caller processes
 * (scenario-caller.ts).
 */
import http from 'node:http';
import { performance } from 'node:perf_hooks';
import type { Agent } from '../../src/agent/agent.ts';

/** Where a caller process calls and how fast: what every caller process is told on its command line (JSON). */
export interface CallerRoute {
  url: string;
  prefix: string;
  partitions: number;
  modid: number;
  cmdid: number;
  /** Hosts the route holds: the caller is ready once its agent has them all. */
  hosts: number;
  ratePerS: number;
}

/** What a caller process of picks and reports is told on its command line (JSON). */
export interface CallerConfig extends CallerRoute {
  durationMs: number;
  timeoutMs: number;
}

export interface LoadCounts {
  calls: number;
  ok: number;
  /** Failed by cause: no answer by the timeout, an error answer, no host to pick. */
  timeouts: number;
  errors: number;
  noHost: number;
  /** Picks per host ("ip:port") per 1 s bucket of call start time. */
  picks: Record<string, number[]>;
  /** Failed calls per host. */
  failedByHost: Record<string, number>;
  /** How late an arrival started at worst, ms (whether the process kept up with its schedule). */
  maxLagMs: number;
}

export function emptyCounts(): LoadCounts {
  return { calls: 0, ok: 0, timeouts: 0, errors: 0, noHost: 0, picks: {}, failedByHost: {}, maxLagMs: 0 };
}

/** Adds `b` to `a`. */
export function addCounts(a: LoadCounts, b: LoadCounts): LoadCounts {
  const picks: Record<string, number[]> = { ...a.picks };
  for (const [k, v] of Object.entries(b.picks)) {
    const sum = [...(picks[k] ?? [])];
    v.forEach((n, i) => (sum[i] = (sum[i] ?? 0) + n));
    picks[k] = sum;
  }
  const failedByHost: Record<string, number> = { ...a.failedByHost };
  for (const [k, v] of Object.entries(b.failedByHost)) failedByHost[k] = (failedByHost[k] ?? 0) + v;
  return {
    calls: a.calls + b.calls,
    ok: a.ok + b.ok,
    timeouts: a.timeouts + b.timeouts,
    errors: a.errors + b.errors,
    noHost: a.noHost + b.noHost,
    picks,
    failedByHost,
    maxLagMs: Math.max(a.maxLagMs, b.maxLagMs),
  };
}

export interface OpenLoadOptions {
  agent: Agent;
  modid: number;
  cmdid: number;
  ratePerS: number;
  /** The load runs from `startAt` (epoch ms: the scenario's time 0) for `durationMs`. */
  startAt: number;
  durationMs: number;
  timeoutMs: number;
}

/** Runs the load; resolves once it has ended and every call was answered or timed out. */
export function runOpenLoad(o: OpenLoadOptions): Promise<LoadCounts> {
  const counts = emptyCounts();
  const httpAgent = new http.Agent({ keepAlive: true });
  const endAt = o.startAt + o.durationMs;
  const meanGapMs = 1000 / o.ratePerS;
  const buckets = Math.ceil(o.durationMs / 1000);
  let next = o.startAt;
  let outstanding = 0;
  let arriving = true;
  let resolve!: (c: LoadCounts) => void;
  const finished = new Promise<LoadCounts>((r) => (resolve = r));

  const settle = (): void => {
    if (arriving || outstanding > 0) return;
    httpAgent.destroy();
    resolve(counts);
  };

  const call = async (startedAt: number): Promise<void> => {
    const h = await o.agent.getHost(o.modid, o.cmdid);
    counts.calls++;
    if (!h.ok) {
      counts.noHost++;
      outstanding--;
      settle();
      return;
    }
    const key = `${h.ip}:${h.port}`;
    const row = (counts.picks[key] ??= new Array<number>(buckets).fill(0));
    row[Math.floor((startedAt - o.startAt) / 1000)]!++;
    const t0 = performance.now();
    const ac = new AbortController();
    let done = false;
    const end = (retcode: number, latencyMs: number): void => {
      done = true;
      o.agent.report(o.modid, o.cmdid, h, retcode, latencyMs);
      if (retcode !== 0) counts.failedByHost[key] = (counts.failedByHost[key] ?? 0) + 1;
      outstanding--;
      settle();
    };
    const timer = setTimeout(() => {
      if (done) return;
      counts.timeouts++;
      end(1, o.timeoutMs);
      ac.abort();
    }, o.timeoutMs);
    const req = http.get({ host: h.ip, port: h.port, path: '/', agent: httpAgent, signal: ac.signal }, (res) => {
      res.resume();
      res.on('error', () => undefined);
      res.on('end', () => {
        if (done) return;
        clearTimeout(timer);
        if (res.statusCode === 200) counts.ok++;
        else counts.errors++;
        end(res.statusCode === 200 ? 0 : 1, performance.now() - t0);
      });
    });
    req.on('error', () => {
      if (done) return;
      clearTimeout(timer);
      counts.errors++;
      end(1, performance.now() - t0);
    });
  };

  const arrive = (): void => {
    const now = Date.now();
    while (next <= now && next < endAt) {
      counts.maxLagMs = Math.max(counts.maxLagMs, now - next);
      outstanding++;
      void call(next);
      next += -meanGapMs * Math.log(1 - Math.random());
    }
    if (next >= endAt) {
      arriving = false;
      settle();
      return;
    }
    setTimeout(arrive, next - now);
  };
  setTimeout(arrive, Math.max(0, o.startAt - Date.now()));
  return finished;
}
