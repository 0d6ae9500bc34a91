/**
 * The scenario both RPC integrations are tested with: one backend of a route
 * fails (errors), then hangs past the callers' timeout, then recovers, while
 * calls run through the integration, which reports every outcome by itself.
 * The host must be ejected for the errors, ejected again for the timed-out
 * probes (reported at the timeout, not when the server finally answers), and
 * come back to its share once healthy and past its slow start.
 */
import { expect } from 'chai';
import type { Agent } from '../../src/agent/agent.ts';
import type { RouteEvent } from '../../schemas/messages.ts';
import type { TestCluster } from './cluster.ts';
import { waitFor, waitForEvent } from './wait.ts';

export type BackendMode = 'ok' | 'fail' | 'hang';

export interface Backend {
  mode: BackendMode;
  requests: number;
  hung: number;
  port: number;
}

export interface FailHangRecover {
  c: TestCluster;
  agent: Agent;
  modid: number;
  cmdid: number;
  bad: Backend;
  good: readonly Backend[];
  /** What the failures are called in wait messages (500s, UNAVAILABLE). */
  failure: string;
  /** Calls the load ended with a timeout (deadline) so far, and the longest time one took. */
  timeouts: () => number;
  maxTimeoutElapsed: () => number;
  hangMs: number;
}

export async function failHangRecover(o: FailHangRecover): Promise<void> {
  const { c, agent, modid, cmdid, bad, good } = o;
  const goodRequests = () => good.reduce((n, s) => n + s.requests, 0);
  const isBad = (e: RouteEvent) => e.modid === modid && e.cmdid === cmdid && e.port === bad.port;

  // errors: the reports of the calls eject the host, and calls stop reaching it
  bad.mode = 'fail';
  const ejected = await waitForEvent(c.events.subscribe, (e) => isBad(e) && e.to === 'overloaded', { what: `ejection for ${o.failure}`, timeoutMs: 20_000 });
  await waitFor(async () => (await agent.getRoute(modid, cmdid))!.version >= ejected.version, { what: 'agent has the ejection' });
  const atEjection = bad.requests;
  const g0 = goodRequests();
  await waitFor(() => goodRequests() >= g0 + 200, { what: 'calls after the ejection' });
  expect(bad.requests - atEjection, 'calls reaching the ejected host').to.be.at.most(6);

  // hang: its probes time out, are reported at the timeout, and eject it again
  bad.mode = 'hang';
  const hangFrom = Date.now();
  await waitForEvent(c.events.subscribe, (e) => isBad(e) && e.ts >= hangFrom && e.from === 'probing' && e.to === 'overloaded', { what: 'ejection for timeouts', timeoutMs: 30_000 });
  expect(bad.hung).to.be.greaterThan(0);
  expect(o.timeouts()).to.be.greaterThan(0);
  // a timed-out call ended at its timeout, not when the server finally answered
  expect(o.maxTimeoutElapsed()).to.be.lessThan(o.hangMs - 300);

  // recovery: answers again, probes succeed, it is healthy and gets its share back
  bad.mode = 'ok';
  const recovered = await waitForEvent(c.events.subscribe, (e) => isBad(e) && e.ts >= hangFrom && e.to === 'healthy', { what: 'recovery', timeoutMs: 30_000 });
  await waitFor(async () => (await agent.getRoute(modid, cmdid))!.version >= recovered.version, { what: 'agent has the recovery' });
  // a host back from ejection ramps up over slow_start_window (the route's: 2 s here) before its full share
  await waitFor(
    async () => {
      const h = (await agent.getRoute(modid, cmdid))!.hosts.find((x) => x.port === bad.port);
      return h !== undefined && h.state === 'healthy' && h.pick_weight >= h.weight;
    },
    { what: 'slow start over', timeoutMs: 15_000 },
  );
  const b0 = bad.requests;
  const g1 = goodRequests();
  await waitFor(() => goodRequests() >= g1 + 400, { what: 'calls after recovery' });
  const share = (bad.requests - b0) / (bad.requests - b0 + goodRequests() - g1);
  expect(share, 'share of the recovered host').to.be.within(0.2, 0.45);
}
