/**
 * The nemesis checks over a run's full history (pure). Each returns its
 * violations, each violation a sentence naming what went wrong, where and
 * when (seconds since the run started), and the figures of the run.
 *
 * 1. exactly once: every report made and acknowledged is stored in
 *    ClickHouse once (report ids ride in the latency, see workload.ts);
 * 2. versions: no agent applies a version at or below one it applied
 *    before; one (route, version) means one content, on the bus and at the
 *    agents; no state is published below a version already out when it was
 *    stamped;
 * 3. fencing: no state received from X more than FENCE_TOLERANCE_MS after
 *    another node's lease on its partition was stored;
 * 4. healing: after each fault group heals, no partition stays unowned
 *    longer than the lease time + 1 s;
 * 5. readiness: no node answers ready owning nothing while partitions have
 *    been unowned longer than that bound, and none owning partitions (all
 *    of them owned) answers not ready for longer than it;
 * 6. idle routes: at most one new version per minute per route without
 *    traffic.
 */
import { QUIET_MS } from '../../actors/route.ts';
import { aliveAt, gaps, incarnations, ownedIntervals, unownedAt, type Interval } from './ownership.ts';
import { ProcEventKind, type History, type ProcEvent, type RouteMsg } from './types.ts';

/**
 * How late a route state may be received after another node's lease on its
 * partition was stored. Fencing closes the holder's window a quarter lease
 * (500 ms by default) before anyone else may take over, so a state published
 * in time and received more than this after the other lease has spent more
 * than 750 ms between the sender and the harness (two servers and the
 * harness' event loop, whose worst delay the report gives).
 */
export const FENCE_TOLERANCE_MS = 250;
/**
 * States published by a node within this long after its callers stopped
 * still carry their last reports (1.5 s), or what fell due before the route
 * went quiet (QUIET_MS after its last input: then it changes nothing by
 * time alone).
 */
export const IDLE_SETTLE_MS = QUIET_MS + 1500;

export const CheckId = {
  exactlyOnce: 'exactly-once',
  versions: 'versions',
  fencing: 'fencing',
  healing: 'healing',
  readiness: 'readiness',
  idle: 'idle',
} as const;
export type CheckId = (typeof CheckId)[keyof typeof CheckId];

export interface Violation {
  /** ms since epoch; 0 when the violation has no one moment */
  at: number;
  what: string;
}

export interface CheckResult {
  id: CheckId;
  title: string;
  ok: boolean;
  violations: Violation[];
  /** Things seen that are not violations but help read the result. */
  notes: string[];
}

export interface Figures {
  chaos_lost_reports: number;
  chaos_duplicate_rows: number;
  chaos_stale_versions: number;
  chaos_fenced_publishes_seen: number;
  chaos_max_unowned_after_heal_ms: number;
  chaos_readiness_violations: number;
  chaos_idle_versions_per_min: number;
  chaos_faults_injected: number;
  chaos_reports_made: number;
  chaos_run_seconds: number;
}

export interface Verdict {
  checks: CheckResult[];
  figures: Figures;
  /** Per heal: ms any partition stayed unowned after it (for the report). */
  heals: Array<{ group: number; faults: string[]; at: number | undefined; unownedAfterMs: number; worst: string }>;
}

const MAX_LISTED = 25;

function fmtT(h: History, t: number): string {
  return `+${((t - h.runStart) / 1000).toFixed(1)} s`;
}

function push(out: Violation[], v: Violation): void {
  out.push(v);
}

function result(id: CheckId, title: string, violations: Violation[], notes: string[] = []): CheckResult {
  return { id, title, ok: violations.length === 0, violations, notes };
}

// ---------------------------------------------------------------- 1

export function checkExactlyOnce(h: History): { result: CheckResult; lost: number; duplicates: number } {
  const v: Violation[] = [];
  const notes: string[] = [];
  let lost = 0;
  let dup = 0;
  const tallies = new Map(h.tallies.map((t) => [t.caller, t]));
  for (const a of h.agents) {
    if (a.pending > 0 || a.dropped > 0) push(v, { at: 0, what: `agent ${a.agent}: after the flush ${a.pending} reports still unacknowledged and ${a.dropped} dropped (outbox overflow or close), of ${a.made} made` });
    if (a.reports !== a.made) notes.push(`agent ${a.agent}: ${a.made} calls reported, the agent counted ${a.reports}`);
    const t = tallies.get(a.agent);
    if (t === undefined) {
      if (a.made > 0) {
        lost += a.made;
        push(v, { at: 0, what: `agent ${a.agent}: none of its ${a.made} reports is in ClickHouse` });
      }
      continue;
    }
    const missing = a.made - t.distinct;
    const extra = t.rows - t.foreign - t.distinct;
    lost += missing;
    dup += extra;
    if (missing > 0) {
      const inStream = t.missingInStream;
      const where =
        inStream === undefined
          ? ''
          : inStream.length === 0
            ? '; none of those ids is in the reports stream (lost by JetStream after its acknowledgement, or never sent)'
            : `; in the reports stream: ${inStream
                .slice(0, 4)
                .map((x) => `id ${x.id} at seq ${x.seq}`)
                .join(', ')}${inStream.length < t.missingSample.length ? `, the other ${t.missingSample.length - inStream.length} sampled ids not` : ''} (lost between the stream and ClickHouse)`;
      push(v, { at: 0, what: `agent ${a.agent}: ${missing} of ${a.made} acknowledged reports missing from ClickHouse (ids ${t.missingSample.join(', ')}${missing > t.missingSample.length ? ', …' : ''})${where}` });
    }
    if (extra > 0) {
      const ex = t.duplicateSample.map((d) => `id ${d.id}: ${d.rows} rows, stream seqs ${d.seqs.join('/')}`).join('; ');
      push(v, { at: 0, what: `agent ${a.agent}: ${extra} rows stored more than once (${ex})` });
    }
    if (t.foreign > 0) push(v, { at: 0, what: `agent ${a.agent}: ${t.foreign} rows whose report id was never made by it` });
  }
  for (const t of h.tallies) if (!h.agents.some((a) => a.agent === t.caller)) push(v, { at: 0, what: `caller ${t.caller}: ${t.rows} rows from a caller no agent process had` });
  if (!h.sinksDrained) notes.push('the sinks had not drained the reports stream when ClickHouse was read (rows still on their way count as lost)');
  return { result: result(CheckId.exactlyOnce, 'every acknowledged report stored in ClickHouse exactly once', v, notes), lost, duplicates: dup };
}

// ---------------------------------------------------------------- 2

export function checkVersions(h: History): { result: CheckResult; stale: number } {
  const v: Violation[] = [];
  // backwards at an agent: versions it applies must rise
  const last = new Map<string, { version: number; t: number }>();
  let backwards = 0;
  for (const a of [...h.applied].sort((x, y) => x.t - y.t)) {
    const k = `${a.agent}|${a.route}`;
    const prev = last.get(k);
    if (prev !== undefined && a.version <= prev.version) {
      backwards++;
      push(v, { at: a.t, what: `agent ${a.agent} applied route ${a.route} v${a.version} at ${fmtT(h, a.t)} after v${prev.version} (${fmtT(h, prev.t)})` });
    }
    if (prev === undefined || a.version > prev.version) last.set(k, { version: a.version, t: a.t });
  }
  // one version, one content: on the bus and at the agents
  const forks = new Map<string, Map<string, string>>();
  const note = (route: string, version: number, hash: string, who: string): void => {
    const k = `${route}@${version}`;
    let m = forks.get(k);
    if (m === undefined) {
      m = new Map<string, string>();
      forks.set(k, m);
    }
    if (!m.has(hash)) m.set(hash, who);
  };
  for (const m of h.routeMsgs) note(m.route, m.version, `bus:${m.hash}`, `published by ${m.sender} at ${fmtT(h, m.t)}`);
  for (const a of h.applied) note(a.route, a.version, `agent:${a.hash}`, `applied by ${a.agent} at ${fmtT(h, a.t)}`);
  let forked = 0;
  for (const [k, m] of forks) {
    const bus = [...m].filter(([x]) => x.startsWith('bus:'));
    const agent = [...m].filter(([x]) => x.startsWith('agent:'));
    if (bus.length > 1 || agent.length > 1) {
      forked++;
      const list = (bus.length > 1 ? bus : agent).map(([hash, who]) => `${hash.split(':')[1]} ${who}`);
      const at = Math.min(...h.routeMsgs.filter((x) => `${x.route}@${x.version}` === k).map((x) => x.t), Infinity);
      push(v, { at: Number.isFinite(at) ? at : 0, what: `route ${k.replace('@', ' v')} has ${Math.max(bus.length, agent.length)} contents: ${list.join('; ')}` });
    }
  }
  // a state stamped after a higher version of its route was out
  let below = 0;
  const byRoute = new Map<string, RouteMsg[]>();
  for (const m of h.routeMsgs) {
    const l = byRoute.get(m.route) ?? [];
    l.push(m);
    byRoute.set(m.route, l);
  }
  for (const [route, ms] of byRoute) {
    ms.sort((a, b) => a.t - b.t);
    let max: RouteMsg | undefined;
    let j = 0;
    const byStamp = [...ms].sort((a, b) => a.ts - b.ts);
    for (const m of byStamp) {
      // the highest version received before m was stamped
      while (j < ms.length && ms[j]!.t < m.ts) {
        if (max === undefined || ms[j]!.version > max.version) max = ms[j]!;
        j++;
      }
      if (max !== undefined && m.version < max.version) {
        below++;
        push(v, { at: m.t, what: `route ${route} v${m.version} published by ${m.sender} at ${fmtT(h, m.ts)} after v${max.version} (by ${max.sender}) was out at ${fmtT(h, max.t)}: agents holding it ignore the newer content` });
      }
    }
  }
  const notes = [`${backwards} backwards at agents, ${forked} versions with two contents, ${below} states published below a version already out`];
  return { result: result(CheckId.versions, 'no route version goes backwards, one version means one content', v, notes), stale: backwards + forked + below };
}

// ---------------------------------------------------------------- 3

/** Stretches when a process was down or paused, by process id. */
function faultStretches(events: readonly ProcEvent[], proc: (p: string) => boolean, end: number): Interval[] {
  const out: Interval[] = [];
  const open = new Map<string, number>();
  for (const e of events) {
    if (!proc(e.proc)) continue;
    if (e.what === ProcEventKind.kill || e.what === ProcEventKind.stop || e.what === ProcEventKind.pause) {
      if (!open.has(e.proc)) open.set(e.proc, e.t);
    } else if (e.what === ProcEventKind.up || e.what === ProcEventKind.resume) {
      const s = open.get(e.proc);
      if (s !== undefined) out.push({ from: s, to: e.t });
      open.delete(e.proc);
    }
  }
  for (const s of open.values()) out.push({ from: s, to: end });
  return out;
}

export function checkFencing(h: History): { result: CheckResult; fenced: number } {
  const v: Violation[] = [];
  const notes: string[] = [];
  const byP = new Map<number, typeof h.leases>();
  for (const e of h.leases) {
    const l = byP.get(e.p) ?? [];
    l.push(e);
    byP.set(e.p, l);
  }
  for (const l of byP.values()) l.sort((a, b) => a.created - b.created || a.rev - b.rev);
  const natsDown = faultStretches(h.procEvents, (p) => p.startsWith('nats-'), h.runEnd);
  const downOf = new Map<string, Interval[]>();
  const stalls = h.harnessStalls ?? [];
  const overlaps = (ivs: Interval[], a: number, b: number): boolean => ivs.some((iv) => iv.from < b && a < iv.to);
  let fenced = 0;
  let late = 0;
  for (const m of [...h.routeMsgs].sort((a, b) => a.t - b.t)) {
    const ls = byP.get(m.partition);
    if (!ls) continue;
    // the lease stored last at least the tolerance before the receipt
    let e: (typeof ls)[number] | undefined;
    for (const x of ls) {
      if (x.created <= m.t - FENCE_TOLERANCE_MS) e = x;
      else break;
    }
    if (e === undefined || e.node === undefined || e.node === m.sender) continue;
    // The sender took the lease back since. Its write counts up to the tolerance after the receipt: a takeover
    // can be superseded by a renewal before any observer reads it, and the renewal is stored a little later.
    if (ls.some((x) => x.node === m.sender && x.created > e.created && x.created <= m.t + FENCE_TOLERANCE_MS)) continue;
    let senderDown = downOf.get(m.sender);
    if (senderDown === undefined) downOf.set(m.sender, (senderDown = faultStretches(h.procEvents, (p) => p === `node-${m.sender}`, h.runEnd)));
    // stamped before the other lease existed, and something other than the sender's decision held it on the way
    const held = overlaps(natsDown, m.ts, m.t) ? 'a nats-server was paused or down' : overlaps(senderDown, m.ts, m.t) ? 'its sender was paused' : overlaps(stalls, m.ts, m.t) ? 'the harness stood still' : undefined;
    if (m.ts < e.created && held !== undefined) {
      late++;
      if (late <= 5) notes.push(`late delivery (not counted): route ${m.route} v${m.version} from ${m.sender} stamped at ${fmtT(h, m.ts)}, before ${e.node}'s lease on partition ${m.partition} (${fmtT(h, e.created)}), received at ${fmtT(h, m.t)}: ${held} meanwhile`);
      continue;
    }
    fenced++;
    if (fenced <= MAX_LISTED) {
      push(v, {
        at: m.t,
        what: `route ${m.route} v${m.version} from ${m.sender} received at ${fmtT(h, m.t)}, ${m.t - e.created} ms after ${e.node}'s lease on partition ${m.partition} was stored (rev ${e.rev}, ${fmtT(h, e.created)}${e.sent !== undefined ? `, sent by ${e.node} at ${fmtT(h, e.sent)}` : ''}); ${m.ts >= e.created ? `stamped ${m.ts - e.created} ms after that lease` : `stamped ${e.created - m.ts} ms before it, delivered late`}`,
      });
    }
  }
  if (fenced > MAX_LISTED) push(v, { at: 0, what: `… and ${fenced - MAX_LISTED} more` });
  if (late > 0) notes.push(`${late} states delivered late (a server or their sender paused or down, or the harness standing still), each stamped before the other lease was stored`);
  notes.push(`tolerance ${FENCE_TOLERANCE_MS} ms; the harness' longest event-loop delay was ${Math.round(h.harnessLagMaxMs)} ms (${stalls.length} stalls over 100 ms)`);
  return { result: result(CheckId.fencing, 'no state published for a partition whose lease the node no longer held', v, notes), fenced };
}

// ---------------------------------------------------------------- 4 and 5

export function boundMs(h: History): number {
  return h.leaseMs + 1000;
}

function ownership(h: History): Interval[][] {
  return ownedIntervals(h.leases, h.procEvents, { partitions: h.partitions, leaseMs: h.leaseMs, procOf: (n) => `node-${n}`, end: h.runEnd });
}

/** The holder of partition p's latest lease stored before t, for the messages. */
function lastHolder(h: History, p: number, t: number): string {
  let best: (typeof h.leases)[number] | undefined;
  for (const e of h.leases) if (e.p === p && e.created <= t && (!best || e.created > best.created || (e.created === best.created && e.rev > best.rev))) best = e;
  if (!best) return 'never leased';
  return best.node === undefined ? `lease deleted at ${fmtT(h, best.created)}` : `last lease ${best.node} at ${fmtT(h, best.created)}`;
}

export function checkHealing(h: History, owned = ownership(h)): { result: CheckResult; maxMs: number; heals: Verdict['heals'] } {
  const v: Violation[] = [];
  const bound = boundMs(h);
  let maxMs = 0;
  const heals: Verdict['heals'] = [];
  for (const heal of h.heals) {
    const faults = heal.faults.join(' + ');
    if (heal.at === undefined) {
      push(v, { at: heal.upAt, what: `after ${faults}: JetStream did not answer writes before the next step (processes up at ${fmtT(h, heal.upAt)})` });
      heals.push({ group: heal.group, faults: heal.faults, at: undefined, unownedAfterMs: NaN, worst: 'JetStream not writable' });
      continue;
    }
    let worst = 0;
    let worstText = 'every partition owned at the heal';
    const offenders: string[] = [];
    owned.forEach((ivs, p) => {
      for (const g of gaps(ivs, h.nemesisStart, heal.windowEnd)) {
        if (g.to <= heal.at! || g.from >= heal.windowEnd) continue;
        const from = Math.max(g.from, heal.at!);
        const d = Math.min(g.to, heal.windowEnd) - from;
        const open = g.to >= heal.windowEnd;
        const text = `partition ${p} unowned from ${fmtT(h, g.from)} to ${open ? `past ${fmtT(h, heal.windowEnd)} (the window's end)` : fmtT(h, g.to)}, ${(d / 1000).toFixed(1)} s after the heal (${lastHolder(h, p, from)})`;
        if (d > worst) {
          worst = d;
          worstText = text;
        }
        if (d > bound) offenders.push(text);
      }
    });
    maxMs = Math.max(maxMs, worst);
    heals.push({ group: heal.group, faults: heal.faults, at: heal.at, unownedAfterMs: worst, worst: worstText });
    if (offenders.length > 0) {
      push(v, { at: heal.at, what: `after ${faults} healed at ${fmtT(h, heal.at)}: ${offenders.length} partitions unowned longer than ${bound} ms, e.g. ${offenders.slice(0, 3).join('; ')}` });
    }
  }
  return { result: result(CheckId.healing, `every partition owned within the lease time + 1 s (${bound} ms) after each fault heals`, v), maxMs, heals };
}

export function checkReadiness(h: History, owned = ownership(h)): { result: CheckResult; count: number } {
  const v: Violation[] = [];
  const notes: string[] = [];
  const bound = boundMs(h);
  const from = h.nemesisStart;
  /** The longest a partition has been unowned at t (0 when all are owned). */
  const unownedFor = (t: number): { ms: number; p: number } => {
    let best = { ms: 0, p: -1 };
    owned.forEach((ivs, p) => {
      if (ivs.some((iv) => iv.from <= t && t < iv.to)) return;
      const prev = ivs.filter((iv) => iv.to <= t).pop();
      const since = prev ? prev.to : h.runStart;
      if (t - since > best.ms) best = { ms: t - since, p };
    });
    return best;
  };
  let count = 0;
  let withUnownedMetric = 0;
  /** The longest a node's lars_cluster_partitions_unowned disagreed with the lease history, over consecutive samples. */
  let metricWorst: { node: string; from: number; to: number; said: number; truth: number } | undefined;
  for (const node of h.nodes) {
    const lives = incarnations(h.procEvents, `node-${node}`, h.runEnd);
    const samples = h.ready.filter((s) => s.node === node && s.t >= from).sort((a, b) => a.t - b.t);
    let run: { first: number; last: number; owned: number; reason: string } | undefined;
    const endRun = (): void => {
      if (run && run.last - run.first > bound) {
        count++;
        push(v, { at: run.first, what: `node ${node} answered not ready from ${fmtT(h, run.first)} to ${fmtT(h, run.last)} (${((run.last - run.first) / 1000).toFixed(1)} s; "${run.reason}") while serving ${run.owned} partitions with every partition owned` });
      }
      run = undefined;
    };
    let disagree: { from: number; said: number; truth: number } | undefined;
    for (const s of samples) {
      if (s.unowned !== undefined) {
        withUnownedMetric++;
        const truth = unownedAt(owned, s.t);
        if (s.unowned !== truth) {
          disagree ??= { from: s.t, said: s.unowned, truth };
          if (!metricWorst || s.t - disagree.from > metricWorst.to - metricWorst.from) metricWorst = { node, from: disagree.from, to: s.t, said: disagree.said, truth: disagree.truth };
        } else disagree = undefined;
      }
      if (s.ready === undefined || !aliveAt(lives, s.t)) {
        endRun();
        continue;
      }
      if (s.ready && s.owned === 0) {
        const u = unownedFor(s.t);
        if (u.ms > bound) {
          count++;
          if (count <= MAX_LISTED) push(v, { at: s.t, what: `node ${node} answered ready at ${fmtT(h, s.t)} owning no partition while partition ${u.p} had been unowned for ${(u.ms / 1000).toFixed(1)} s` });
        }
      }
      // A node leaving the cluster (a graceful stop) rightly answers not ready while it hands its partitions over.
      if (s.ready === false && (s.owned ?? 0) > 0 && unownedAt(owned, s.t) === 0 && !(s.reason ?? '').startsWith('leaving')) {
        if (run) {
          run.last = s.t;
          run.owned = s.owned!;
        } else run = { first: s.t, last: s.t, owned: s.owned!, reason: s.reason ?? '' };
      } else endRun();
    }
    endRun();
  }
  if (count > MAX_LISTED) push(v, { at: 0, what: `… ${count} in all` });
  notes.push(withUnownedMetric > 0 ? `lars_cluster_partitions_unowned exposed in ${withUnownedMetric} samples` : 'no node exposed lars_cluster_partitions_unowned');
  if (metricWorst && metricWorst.to > metricWorst.from) {
    notes.push(`longest disagreement of lars_cluster_partitions_unowned with the lease history: node ${metricWorst.node} from ${fmtT(h, metricWorst.from)} to ${fmtT(h, metricWorst.to)} (it said ${metricWorst.said} where ${metricWorst.truth} were unowned at the start; one sample apart is expected around a change)`);
  }
  return { result: result(CheckId.readiness, 'readiness agrees with ownership at every sample', v, notes), count };
}

// ---------------------------------------------------------------- 6

export function checkIdle(h: History): { result: CheckResult; perMin: number } {
  const v: Violation[] = [];
  const from = h.idle.start + IDLE_SETTLE_MS;
  const to = h.idle.end;
  const w = Math.max(0, to - from);
  const allowed = Math.max(1, Math.ceil(w / 60_000));
  let worst = 0;
  for (const route of h.idle.routes) {
    const seen = new Map<number, RouteMsg>();
    for (const m of h.routeMsgs) if (m.route === route && m.t >= from && m.t < to && !seen.has(m.version)) seen.set(m.version, m);
    // a version published before the window and received again is not new
    const before = new Set(h.routeMsgs.filter((m) => m.route === route && m.t < from).map((m) => m.version));
    const fresh = [...seen.values()].filter((m) => !before.has(m.version)).sort((a, b) => a.version - b.version);
    worst = Math.max(worst, fresh.length);
    if (fresh.length > allowed) {
      const senders = [...new Set(fresh.map((m) => m.sender))].join(', ');
      // what each new version changed, against the version before it
      const prior = h.routeMsgs.filter((m) => m.route === route && m.t < from).sort((a, b) => b.version - a.version)[0];
      const changes: string[] = [];
      let prev = prior?.hosts ?? [];
      for (const m of fresh.slice(0, 6)) {
        const now = m.hosts ?? [];
        const diff = now.filter((x) => !prev.includes(x));
        changes.push(`v${m.version} at ${fmtT(h, m.t)}: ${diff.length > 0 ? diff.join(', ') : 'hosts unchanged'}`);
        prev = now;
      }
      push(v, {
        at: fresh[0]!.t,
        what: `route ${route}: ${fresh.length} new versions in ${(w / 1000).toFixed(1)} s without traffic (v${fresh[0]!.version}…v${fresh[fresh.length - 1]!.version} by ${senders}); at most ${allowed} allowed; ${changes.join('; ')}`,
      });
    }
  }
  const perMin = w > 0 ? (worst * 60_000) / w : 0;
  return { result: result(CheckId.idle, 'no route republished without traffic (at most 1 version per minute)', v, [`${h.idle.routes.length} routes idle for ${(w / 1000).toFixed(1)} s (counted after a ${IDLE_SETTLE_MS} ms settle)`]), perMin };
}

// ---------------------------------------------------------------- all

export function judge(h: History): Verdict {
  const owned = ownership(h);
  const c1 = checkExactlyOnce(h);
  const c2 = checkVersions(h);
  const c3 = checkFencing(h);
  const c4 = checkHealing(h, owned);
  const c5 = checkReadiness(h, owned);
  const c6 = checkIdle(h);
  return {
    checks: [c1.result, c2.result, c3.result, c4.result, c5.result, c6.result],
    heals: c4.heals,
    figures: {
      chaos_lost_reports: c1.lost,
      chaos_duplicate_rows: c1.duplicates,
      chaos_stale_versions: c2.stale,
      chaos_fenced_publishes_seen: c3.fenced,
      chaos_max_unowned_after_heal_ms: Math.round(c4.maxMs),
      chaos_readiness_violations: c5.count,
      chaos_idle_versions_per_min: Number(c6.perMin.toFixed(2)),
      chaos_faults_injected: h.faults.length,
      chaos_reports_made: h.agents.reduce((s, a) => s + a.made, 0),
      chaos_run_seconds: Math.round((h.runEnd - h.runStart) / 1000),
    },
  };
}
