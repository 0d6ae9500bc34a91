/**
 * `idle_route_versions_per_min`: what a route publishes once its callers are
 * gone. The real route actor (actors/route.ts) in virtual time, as a route
 * node drives it: ticked every 100 ms (the node's default `tickMs`), flushed
 * after every tick and every report batch. Three agents call a route of 5
 * hosts (a batch every 20 ms, the agents' default `batchMaxDelayMs`, in
 * turn), picking by the published state as agents do (a probing host only by
 * its trial agent); host 1 fails every call until it is ejected and answers
 * its trials. The callers stop at one of three moments, then the route is
 * ticked through 10 virtual minutes and every flush that gives a new version
 * is counted:
 * - `probing_tried`: host 1 is probing and its trial agent has sent a trial;
 * - `probing_named`: host 1 is probing and has a trial agent, no trial yet;
 * - `overloaded`: host 1 has just been ejected (its ejection ends while no
 *   one calls).
 * The figure is the worst of the three, per minute. Target ≤ 1.
 */
import { RouteActor } from '../../actors/route.ts';
import type { HostSlot } from '../../actors/host-slot.ts';
import { trialWeight } from '../../actors/strategies/hosts.ts';
import type { RegistryEntry, ReportBatch, ReportTuple, RouteState } from '../../schemas/messages.ts';
import type { Metric } from '../lib.ts';

const T0 = 1_700_000_000_000;
const TICK_MS = 100;
const BATCH_MS = 20;
const CALLS_PER_BATCH = 10;
const IDLE_MS = 10 * 60_000;
const AGENTS = ['agent-f48a', 'agent-9fb3', 'agent-27c1'];
const FAILING = '10.0.0.1:8000';
/** The callers give up after this long of virtual time if the moment never comes (a bench bug). */
const CALLING_LIMIT_MS = 120_000;

const ENTRY: RegistryEntry = {
  v: 1,
  modid: 1,
  cmdid: 1,
  profile: 'default',
  params: {},
  hosts: Array.from({ length: 5 }, (_, i) => ({ ip: `10.0.0.${i + 1}`, port: 8000, weight: 100 })),
  updated_by: 'bench',
  ts: 0,
};

type Moment = 'probing_tried' | 'probing_named' | 'overloaded';

interface IdleRun {
  moment: Moment;
  /** When the callers stopped, virtual ms from the start. */
  stoppedAtMs: number;
  /** Versions published in the 10 idle minutes. */
  versions: number;
  /** Versions published while the agents called. */
  callingVersions: number;
}

/** One run: callers until `moment`, then 10 idle minutes. */
function run(moment: Moment): IdleRun {
  let now = T0;
  const r = new RouteActor({ modid: 1, cmdid: 1, nodeId: 'bench', entry: ENTRY, now });
  let state: RouteState = r.flush(now)!.state;
  let callingVersions = 0;
  let tried = false;
  const flush = (): boolean => {
    const ch = r.flush(now);
    if (!ch) return false;
    state = ch.state;
    return true;
  };
  const reached = (h: HostSlot): boolean => {
    switch (moment) {
      case 'probing_tried':
        return h.state === 'probing' && h.trialAgent !== undefined && tried;
      case 'probing_named':
        return h.state === 'probing' && h.trialAgent !== undefined;
      case 'overloaded':
        return h.state === 'overloaded';
    }
  };
  let turn = 0;
  for (;;) {
    if (now - T0 > CALLING_LIMIT_MS) throw new Error(`idle-route bench: host 1 never reached ${moment}`);
    // BATCH_MS divides TICK_MS: a tick falls on every fifth batch
    now += BATCH_MS;
    if (now % TICK_MS === 0) {
      r.tick(now);
      if (flush()) callingVersions++;
      if (reached(r.host(FAILING)!)) break;
    }
    // one agent's batch: picks in turn over the hosts it may pick now
    const sender = AGENTS[turn++ % AGENTS.length]!;
    const pickable = state.hosts.filter((h) => trialWeight(h, sender) > 0);
    const hosts: Array<[string, number]> = [];
    const index = new Map<string, number>();
    const reports: ReportTuple[] = [];
    for (let i = 0; i < CALLS_PER_BATCH && pickable.length > 0; i++) {
      const h = pickable[(turn + i) % pickable.length]!;
      const key = `${h.ip}:${h.port}`;
      let hi = index.get(key);
      if (hi === undefined) {
        hi = hosts.length;
        index.set(key, hi);
        hosts.push([h.ip, h.port]);
      }
      const probing = h.state === 'probing';
      if (probing && key === FAILING) tried = true;
      // host 1 fails until ejected; its trials succeed (the host is well again)
      const retcode = key === FAILING && !probing ? 1 : 0;
      reports.push([hi, retcode, 5, 0]);
    }
    const batch: ReportBatch = { v: 1, sender, modid: 1, cmdid: 1, ts: now, hosts, reports };
    r.ingest(batch, now);
    if (flush()) callingVersions++;
    if (reached(r.host(FAILING)!)) break;
  }
  const stopped = now;
  let versions = 0;
  for (let t = stopped - (stopped % TICK_MS) + TICK_MS; t <= stopped + IDLE_MS; t += TICK_MS) {
    now = t;
    r.tick(t);
    if (flush()) versions++;
  }
  return { moment, stoppedAtMs: stopped - T0, versions, callingVersions };
}

export function benchIdleRoute(): { metrics: Metric[]; runs: IdleRun[] } {
  const runs = (['probing_tried', 'probing_named', 'overloaded'] as const).map(run);
  const worst = runs.reduce((a, b) => (b.versions > a.versions ? b : a));
  const minutes = IDLE_MS / 60_000;
  const metrics: Metric[] = [
    {
      name: 'idle_route_versions_per_min',
      value: worst.versions / minutes,
      unit: 'versions/min',
      target: '<= 1',
      note: `worst of ${runs.length} stops (${worst.moment}): ${worst.versions} versions in ${minutes} idle minutes`,
    },
  ];
  for (const x of runs) metrics.push({ name: `idle_route_versions_10min_${x.moment}`, value: x.versions, unit: 'versions', note: `callers stopped at ${(x.stoppedAtMs / 1000).toFixed(2)} s (${x.callingVersions} versions while they called)` });
  return { metrics, runs };
}
