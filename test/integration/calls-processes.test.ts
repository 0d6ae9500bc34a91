import { expect } from 'chai';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { DEFAULT_PARAMS } from '../../actors/params.ts';
import type { RouteState } from '../../schemas/messages.ts';
import { PARTITIONS, TestCluster } from '../helpers/cluster.ts';
import { allReady, CallCaller } from '../helpers/call-processes.ts';
import type { CallLoadCounts } from '../helpers/call-load.ts';
import { waitFor, waitForEvent } from '../helpers/wait.ts';

const M = 15;
const C = 1;
const PROCESSES = 2;
const HOSTS = 5;
/** Calls per second of each caller process. */
const RATE = 40;
/** Successful calls each process makes after the route stopped shedding, before the run ends. */
const AFTER_RELEASE = 20;
/** Calls each process refuses while the route sheds before the hosts recover (about 2 s of its load). */
const SHED_BEFORE_RECOVERY = 60;

/** A real loopback HTTP server answering 200, or 503 while failing, or nothing while hanging; it counts every request (every attempt of every caller) and the hanging ones its callers aborted. */
interface Server {
  readonly port: number;
  failing: boolean;
  hanging: boolean;
  requests: number;
  hung: number;
  aborted: number;
  close(): Promise<void>;
}

async function server(): Promise<Server> {
  const s = { failing: false, hanging: false, requests: 0, hung: 0, aborted: 0 } as Server;
  const srv = http.createServer((req, res) => {
    s.requests++;
    req.resume();
    res.on('error', () => undefined);
    if (s.hanging) {
      s.hung++;
      res.on('close', () => s.aborted++);
      return;
    }
    res.writeHead(s.failing ? 503 : 200);
    res.end();
  });
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  return Object.assign(s, {
    port: (srv.address() as AddressInfo).port,
    close: async () => {
      srv.closeAllConnections();
      await new Promise<void>((r) => srv.close(() => r()));
    },
  });
}

const sum = (xs: readonly CallLoadCounts[], f: (x: CallLoadCounts) => number): number => xs.reduce((n, x) => n + f(x), 0);

describe('call policy on real processes (nats-server, route node, HTTP servers, agents in two caller processes)', function () {
  this.timeout(60_000);
  let c: TestCluster | undefined;
  let servers: Server[] = [];
  let callers: CallCaller[] = [];

  afterEach(async () => {
    await Promise.all(callers.map((k) => k.close()));
    await Promise.all(servers.map((s) => s.close()));
    await c?.stop();
    callers = [];
    servers = [];
    c = undefined;
  });

  it('calls - the route-wide retry budget holds across two processes (attempts counted by the servers); shedding engages while every host fails and releases once they recover', async () => {
    c = await TestCluster.start();
    await c.startNode();
    servers = await Promise.all(Array.from({ length: HOSTS }, () => server()));
    await c.addLoopbackRoute(M, C, servers);
    const cfg = { url: c.server.url, prefix: c.prefix, partitions: PARTITIONS, modid: M, cmdid: C, hosts: HOSTS, ratePerS: RATE, attemptTimeoutMs: 1000, maxAttempts: 3 };
    callers = Array.from({ length: PROCESSES }, () => new CallCaller(cfg));
    await allReady(callers);
    const states = c.states.subscribe;
    const ours = (s: RouteState): boolean => s.modid === M && s.cmdid === C;
    const startAt = Date.now() + 100;
    for (const k of callers) k.send({ startAt });

    // healthy: the route hears both processes and publishes each one's share of the route's retry floor
    const shareOfFloor = DEFAULT_PARAMS.retry_min_per_sec / PROCESSES;
    await waitForEvent<RouteState>(states, (s) => ours(s) && s.retry_floor !== undefined && s.retry_floor <= shareOfFloor, { what: 'the route publishing the floor shared by two callers' });
    for (const k of callers) await k.statsWhen((s) => (s.route.retryFloor ?? Infinity) <= shareOfFloor && s.ok >= 20, 'the process holding its share of the floor, its calls answered');

    // every host fails: retries within the budget, then the route sheds and both processes refuse calls at once
    for (const s of servers) s.failing = true;
    const engaged = await waitForEvent<RouteState>(states, (s) => ours(s) && (s.shed ?? 0) > 0, { what: 'the route shedding', timeoutMs: 15_000 });
    // a few seconds of outage: the floor, not the share of first attempts, is most of what the budget allows then
    for (const k of callers) await k.statsWhen((s) => (s.stops['shed'] ?? 0) >= SHED_BEFORE_RECOVERY, 'the process refusing calls while the route sheds');

    // the hosts recover: the route stops shedding within seconds, and so does each process once its agent holds that
    for (const s of servers) s.failing = false;
    const released = await waitForEvent<RouteState>(states, (s) => ours(s) && s.version > engaged.version && (s.shed ?? 0) === 0, { what: 'the route no longer shedding', timeoutMs: 15_000 });
    const held = await Promise.all(callers.map((k) => k.statsWhen((s) => s.route.version >= released.version && s.route.shed === 0, 'the process holding the release')));
    await Promise.all(callers.map((k, i) => k.statsWhen((s) => s.ok >= held[i]!.ok + AFTER_RELEASE, 'calls answered again')));
    const results = await Promise.all(callers.map((k) => k.finish()));

    const firsts = sum(results, (r) => r.first);
    const retries = sum(results, (r) => r.retry);
    const served = servers.reduce((n, s) => n + s.requests, 0);
    // the route-wide budget the route actor published, up to the release (every retry was made before it):
    // its retry share of the first attempts of every caller, plus its floor (retry_min_per_sec for the whole
    // route, shared by the callers) over the time the processes' budgets had run (under the agents' 10 s window)
    expect(sum(held, (r) => r.retry), 'retries after the release').to.equal(retries);
    const ratio = Math.max(...c.states.items.filter(ours).map((s) => s.retry_budget ?? 0));
    const heldFirsts = sum(held, (r) => r.first);
    const seconds = Math.max(...held.map((r) => r.spanMs)) / 1000;
    const budget = ratio * heldFirsts + DEFAULT_PARAMS.retry_min_per_sec * seconds;
    const stops = (r: CallLoadCounts): string => JSON.stringify(r.stops);
    console.log(
      `      ${sum(results, (r) => r.calls)} calls in ${seconds.toFixed(1)} s over ${PROCESSES} processes: ${firsts} first attempts, ${retries} retries (route budget up to the release ${budget.toFixed(1)} = ${ratio} x ${heldFirsts} + ${DEFAULT_PARAMS.retry_min_per_sec}/s x ${seconds.toFixed(1)} s; with a floor of its own in each process: ${(ratio * heldFirsts + PROCESSES * DEFAULT_PARAMS.retry_min_per_sec * seconds).toFixed(1)}), ` +
        `${served} requests served; shed from version ${engaged.version} (${engaged.shed}) to ${released.version}; stops ${results.map(stops).join(' ')}`,
    );

    // every attempt of both processes reached a server, and nothing else did
    expect(served, 'requests the servers counted = attempts the processes made').to.equal(firsts + retries);
    expect(sum(results, (r) => r.hedge)).to.equal(0);
    expect(sum(results, (r) => r.stops['unexpected'] ?? 0), 'calls failed other than by the policy').to.equal(0);
    // the processes wanted more retries than the budget gave (3 attempts a call), and the two together stayed within it
    expect(sum(results, (r) => r.stops['budget'] ?? 0), 'calls stopped by the budget').to.be.greaterThan(0);
    expect(retries, 'retries made').to.be.greaterThan(0);
    expect(retries, `retries of both processes within the route's budget`).to.be.at.most(budget);
    // once a process held the release, it shed no call
    for (const [i, k] of callers.entries()) expect(results[i]!.stops['shed'] ?? 0, `calls shed by process ${i} after the release reached it`).to.equal(held[i]!.stops['shed'] ?? 0, k.output());
  });

  it('calls - idempotent calls of two processes are hedged away from a host that hangs, within each process\'s hedge budget; the host sees every request it held aborted', async () => {
    c = await TestCluster.start();
    await c.startNode();
    servers = await Promise.all(Array.from({ length: HOSTS }, () => server()));
    await c.addLoopbackRoute(M, C + 1, servers);
    const cfg = { url: c.server.url, prefix: c.prefix, partitions: PARTITIONS, modid: M, cmdid: C + 1, hosts: HOSTS, ratePerS: RATE * 2, attemptTimeoutMs: 2000, maxAttempts: 2, idempotent: true };
    callers = Array.from({ length: PROCESSES }, () => new CallCaller(cfg));
    await allReady(callers);
    const states = c.states.subscribe;
    const startAt = Date.now() + 100;
    for (const k of callers) k.send({ startAt });
    // the route measures the hosts' latency and publishes a hedge delay
    await waitForEvent<RouteState>(states, (s) => s.modid === M && s.cmdid === C + 1 && s.hedge_delay_ms !== undefined, { what: 'the route publishing a hedge delay' });
    for (const k of callers) await k.statsWhen((s) => s.ok >= 100, 'the process calling with the hedge delay held');
    servers[0]!.hanging = true;
    for (const k of callers) await k.statsWhen((s) => s.hedge >= 3, 'the process hedging calls away from the hung host', 20_000);
    const results = await Promise.all(callers.map((k) => k.finish()));
    const hung = servers[0]!;
    // every request the hung host held was given up by its caller: a lost hedge race or an attempt timing out
    await waitFor(() => hung.aborted === hung.hung, { what: 'every request held by the hung host aborted' }).catch(() => undefined);
    console.log(`      ${sum(results, (r) => r.calls)} calls: ${sum(results, (r) => r.first)} first attempts, ${sum(results, (r) => r.hedge)} hedges, ${sum(results, (r) => r.retry)} retries; the hung host held ${hung.hung} requests, ${hung.aborted} aborted; stops ${results.map((r) => JSON.stringify(r.stops)).join(' ')}`);
    expect(hung.aborted, 'requests the hung host held, aborted by their callers').to.equal(hung.hung);
    expect(hung.hung, 'the hung host was tried').to.be.greaterThan(0);
    for (const [i, r] of results.entries()) {
      expect(r.hedge, `hedges of process ${i}`).to.be.greaterThan(0);
      expect(r.hedge, `hedges of process ${i} within its budget (${DEFAULT_PARAMS.hedge_budget_percent} % of its first attempts)`).to.be.at.most((DEFAULT_PARAMS.hedge_budget_percent / 100) * r.first);
    }
    expect(sum(results, (r) => r.stops['unexpected'] ?? 0), 'calls failed other than by the policy').to.equal(0);
  });
});
