import { expect } from 'chai';
import { spawn, type ChildProcess } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { DEFAULT_STRATEGY } from '../../actors/strategies/index.ts';
import { simulate, type SimResult } from '../../src/sim/engine.ts';
import { parseScenario, SCENARIO_DEFAULTS, SYSTEM_DEFAULTS, type Scenario } from '../../src/sim/scenario.ts';
import { PARTITIONS, TestCluster } from '../helpers/cluster.ts';
import { addCounts, runOpenLoad, type CallerConfig, type LoadCounts } from '../helpers/scenario-calls.ts';
import { startScenarioHosts, type ScenarioHosts } from '../helpers/scenario-hosts.ts';
import { waitFor } from '../helpers/wait.ts';

const M = 7;
const C = 1;
const CALLER_SCRIPT = join(dirname(fileURLToPath(import.meta.url)), '..', 'helpers', 'scenario-caller.ts');
/** Callers run in this many processes, one agent each: the scenario's `agents`. */
const PROCESSES = 2;
/** The simulator's figure is the mean over these seeds: the real run is one draw, the mean is what to expect. */
const SIM_SEEDS = 10;

/**
 * scenarios/slow-host.json shortened to run in real time: the same shape (a
 * host of an even route turns slow, far past the callers' timeout, in the
 * middle of the run, then recovers), in 10 s instead of 60, with fewer hosts
 * and calls, and faster hosts. With 50 ms hosts and a 250 ms timeout the
 * default strategy does not avoid the slow host for good on its first
 * timeouts (its estimate, the timeout, is not far above a busy peer's
 * latency × calls in flight), so the route node has to eject it
 * (15 consecutive errors): the calls lost come from the strategy and the
 * node together, about 15 of 2,440 (0.6 %) in the simulator.
 */
const SCENARIO = {
  name: 'slow-host-short',
  description: 'slow-host shortened: 5 hosts at 50 ms (sd 5 ms), 250 calls/s for 10 s over 2 agents; one host answers in 1.5 s from 3 s for 4 s; callers time out at 250 ms.',
  duration_s: 10,
  load: { kind: 'open', rate_per_s: 250, arrivals: 'poisson' },
  timeout_ms: 250,
  agents: PROCESSES,
  hosts: [
    { name: 'h', count: 4, latency: { dist: 'normal', mean_ms: 50, sd_ms: 5 } },
    {
      name: 'slow',
      latency: { dist: 'normal', mean_ms: 50, sd_ms: 5 },
      changes: [{ at_s: 3, for_s: 4, latency: { dist: 'fixed', ms: 1500 }, label: 'slow: 1.5 s latency' }],
    },
  ],
};

/**
 * Tolerance on the success rate, percentage points of all calls: 0.3 points
 * is about 7 calls of the run's ~2,440. The simulator's seeds give
 * 99.34–99.41 % (15 or 16 calls lost); eight real runs gave 99.30–99.38 %
 * (15 to 17 lost, every one a timeout on the slow host), within 0.09 points
 * of the simulator's mean. 0.3 points leaves three times that for a busier
 * machine (a stalled event loop turns calls into timeouts), while a
 * simulator that ignored the slow host (100 %, 0.6 points off) or whose
 * agents picked by weight alone, without their local feedback, until the
 * node ejected the host (swrr: 98.92 %, 0.47 points off) would fail.
 */
const TOLERANCE_POINTS = 0.3;

interface Caller {
  child: ChildProcess;
  messages: Array<{ ready?: boolean; result?: LoadCounts }>;
  output(): string;
  closed: Promise<void>;
}

/** A caller process (test/helpers/scenario-caller.ts) with its JSON lines collected. */
function startCaller(cfg: CallerConfig): Caller {
  const child = spawn(process.execPath, ['--import', 'tsx', CALLER_SCRIPT, JSON.stringify(cfg)], { stdio: ['pipe', 'pipe', 'pipe'] });
  const messages: Caller['messages'] = [];
  let err = '';
  let buf = '';
  child.stdout!.on('data', (d: Buffer) => {
    buf += d.toString();
    const lines = buf.split('\n');
    buf = lines.pop() ?? '';
    for (const l of lines) if (l.trim() !== '') messages.push(JSON.parse(l) as Caller['messages'][number]);
  });
  child.stderr!.on('data', (d: Buffer) => {
    err = (err + d.toString()).slice(-8000);
  });
  child.stdin!.on('error', () => undefined);
  const closed = new Promise<void>((r) => child.on('close', () => r()));
  return { child, messages, output: () => err, closed };
}

/** Share of the picks of host `i` in 1 s buckets [from, to), %. */
function share(picks: number[][], i: number, from: number, to: number): number {
  let mine = 0;
  let all = 0;
  for (let b = from; b < to; b++) {
    const row = picks[b] ?? [];
    mine += row[i] ?? 0;
    for (const n of row) all += n;
  }
  return all > 0 ? (mine * 100) / all : 0;
}

describe('simulator against the real system (nats-server, route node, callers in two processes, HTTP hosts)', function () {
  this.timeout(40_000);
  let c: TestCluster | undefined;
  let hosts: ScenarioHosts | undefined;
  let caller: Caller | undefined;

  after(async () => {
    if (caller) {
      caller.child.stdin!.end();
      if (caller.child.exitCode === null && caller.child.signalCode === null) {
        // a caller still running here means the test failed: it would otherwise go on for its whole load
        caller.child.kill('SIGKILL');
      }
      await caller.closed;
    }
    await hosts?.close();
    await c?.stop();
  });

  it(`slow host, shortened: the real success rate is within ${TOLERANCE_POINTS} points of the simulator's`, async () => {
    const parsed = parseScenario(SCENARIO);
    if (!parsed.ok) throw new Error(parsed.error);
    const s: Scenario = parsed.scenario;
    const timeoutMs = s.timeout_ms ?? SCENARIO_DEFAULTS.timeout_ms;
    const durationMs = s.duration_s! * 1000;
    const change = s.hosts[1]!.changes![0]!;
    const slowFrom = change.at_s;
    const slowTo = change.at_s + change.for_s!;
    if (s.load.kind !== 'open') throw new Error('the real-time callers run an open load');

    // ------------------------------------------------------------ simulator: the agents' default strategy
    const sims: SimResult[] = [];
    for (let seed = 1; seed <= SIM_SEEDS; seed++) sims.push(simulate(s, { strategy: DEFAULT_STRATEGY, seed }));
    const simPct = sims.reduce((x, r) => x + r.successPct, 0) / sims.length;
    const simFailed = sims.reduce((x, r) => x + r.failed, 0) / sims.length;
    const slowIndex = sims[0]!.hosts.findIndex((h) => h.label === 'slow');
    const simShareBefore = sims.reduce((x, r) => x + share(r.timeline.picks, slowIndex, 0, slowFrom), 0) / sims.length;
    const simShareDuring = sims.reduce((x, r) => x + share(r.timeline.picks, slowIndex, slowFrom + 1, slowTo), 0) / sims.length;

    // ------------------------------------------------------------ the real system
    c = await TestCluster.start();
    // the node's and agents' defaults are the simulator's system defaults
    await c.startNode({ tickMs: SYSTEM_DEFAULTS.tick_ms });
    hosts = await startScenarioHosts(s);
    await c.addRoute(
      M,
      C,
      hosts.hosts.map((h) => ({ ip: h.ip, port: h.port, weight: h.weight })),
      s.route?.profile ?? 'default',
      s.route?.params ?? {},
    );
    const n = hosts.hosts.length;
    await waitFor(() => c!.node!.route(M, C), { what: 'route loaded on the node' });
    const agent = await c.agent({ batchMaxDelayMs: SYSTEM_DEFAULTS.batch_max_delay_ms, batchMaxReports: SYSTEM_DEFAULTS.batch_max_reports, timeoutMs });
    const ratePerS = s.load.rate_per_s / PROCESSES;
    caller = startCaller({ url: c.server.url, prefix: c.prefix, partitions: PARTITIONS, modid: M, cmdid: C, hosts: n, ratePerS, durationMs, timeoutMs });
    await waitFor(async () => ((await agent.getRoute(M, C))?.hosts.length ?? 0) >= n, { what: 'the test agent holding the route' });
    await waitFor(
      () => {
        if (caller!.child.exitCode !== null) throw new Error(`caller process exited with ${caller!.child.exitCode}: ${caller!.output()}`);
        return caller!.messages.some((m) => m.ready);
      },
      { what: 'caller process ready', timeoutMs: 20_000, explain: () => caller!.output() },
    );

    // both processes and the slow host's timers count from one start
    const startAt = Date.now() + 200;
    caller.child.stdin!.write(`${JSON.stringify({ startAt })}\n`);
    hosts.start(startAt);
    const own = await runOpenLoad({ agent, modid: M, cmdid: C, ratePerS, startAt, durationMs, timeoutMs });
    const theirs = await waitFor(() => caller!.messages.find((m) => m.result)?.result, { what: 'the caller process result', timeoutMs: timeoutMs + 5000, explain: () => caller!.output() });
    caller.child.stdin!.end();
    const real = addCounts(own, theirs);
    const realFailed = real.calls - real.ok;
    const realPct = (real.ok * 100) / real.calls;
    const slowKey = hosts.hosts.find((h) => h.label === 'slow')!.key;
    const keys = hosts.hosts.map((h) => h.key);
    const buckets = Array.from({ length: Math.ceil(durationMs / 1000) }, (_, b) => keys.map((k) => real.picks[k]?.[b] ?? 0));
    const realShareBefore = share(buckets, keys.indexOf(slowKey), 0, slowFrom);
    const realShareDuring = share(buckets, keys.indexOf(slowKey), slowFrom + 1, slowTo);

    console.log(
      `      sim ${simPct.toFixed(2)} % (mean of seeds 1-${SIM_SEEDS}: ${Math.min(...sims.map((r) => r.successPct)).toFixed(2)}-${Math.max(...sims.map((r) => r.successPct)).toFixed(2)} %, ${simFailed.toFixed(1)} of ${sims[0]!.calls} calls lost), ` +
        `real ${realPct.toFixed(2)} % (${realFailed} of ${real.calls} lost: ${real.timeouts} timeouts, ${real.errors} errors, ${real.noHost} no host; ${real.failedByHost[slowKey] ?? 0} on the slow host); ` +
        `slow host's share ${realShareBefore.toFixed(1)} % -> ${realShareDuring.toFixed(1)} % (sim ${simShareBefore.toFixed(1)} -> ${simShareDuring.toFixed(1)}); callers at most ${real.maxLagMs.toFixed(0)} ms behind their schedule`,
    );

    // the real run had the scenario's load and its slow host
    expect(real.calls, 'calls made in real time').to.be.within(durationMs * s.load.rate_per_s / 1000 * 0.9, durationMs * s.load.rate_per_s / 1000 * 1.1);
    expect(hosts.switches.map((x) => `${x.label} ${x.on ? 'on' : 'off'}`)).to.deep.equal(['slow on', 'slow off']);
    // both runs lose calls to the slow host, and both move its traffic away while it is slow
    for (const r of sims) expect(r.failed, `simulated calls lost, seed ${r.seed}`).to.be.greaterThan(0);
    expect(real.failedByHost[slowKey] ?? 0, 'real calls lost on the slow host').to.be.greaterThan(0);
    expect(simShareDuring, "simulated slow host's share while slow").to.be.lessThan(simShareBefore / 4);
    expect(realShareDuring, "real slow host's share while slow").to.be.lessThan(realShareBefore / 4);
    // the simulator stays honest
    expect(Math.abs(realPct - simPct), `real ${realPct.toFixed(3)} % against simulated ${simPct.toFixed(3)} %`).to.be.at.most(TOLERANCE_POINTS);
  });
});
