/**
 * The nemesis report: `report.md` (figures, each check with its violations,
 * the faults and how long partitions stayed unowned after each heal),
 * `report.json` (the same, as data), `timeline.svg`, and the full history
 * (`history.json.gz`) that every figure is computed from.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { boundMs, FENCE_TOLERANCE_MS, IDLE_SETTLE_MS, type Verdict } from './checks.ts';
import { renderTimeline } from './svg.ts';
import type { History } from './types.ts';

export interface RunInfo {
  /** `git describe`-like text of the code under test. */
  code: string;
  callsPerSec: number;
  agents: number;
  command: string;
  /** The run's own notes (processes started twice, a stream not read). */
  notes: string[];
}

export const FIGURE_UNITS: Record<string, { unit: string; target?: string }> = {
  chaos_lost_reports: { unit: 'reports', target: '<= 0' },
  chaos_duplicate_rows: { unit: 'rows', target: '<= 0' },
  chaos_stale_versions: { unit: 'versions', target: '<= 0' },
  chaos_fenced_publishes_seen: { unit: 'states', target: '<= 0' },
  chaos_max_unowned_after_heal_ms: { unit: 'ms', target: '<= 3000' },
  chaos_readiness_violations: { unit: 'samples', target: '<= 0' },
  chaos_idle_versions_per_min: { unit: 'versions/min', target: '<= 1' },
  chaos_faults_injected: { unit: 'faults' },
  chaos_reports_made: { unit: 'reports' },
  chaos_run_seconds: { unit: 's' },
};

function rel(h: History, t: number | undefined): string {
  return t === undefined ? '–' : `+${((t - h.runStart) / 1000).toFixed(1)} s`;
}

export function renderMarkdown(h: History, v: Verdict, info: RunInfo): string {
  const o: string[] = [];
  const failed = v.checks.filter((c) => !c.ok);
  o.push(`# Nemesis report (seed ${h.seed})`, '');
  o.push(`${failed.length === 0 ? 'Every check held.' : `**${failed.length} of ${v.checks.length} checks failed:** ${failed.map((c) => c.id).join(', ')}.`}`, '');
  o.push(`- command: \`${info.command}\``);
  o.push(`- code: ${info.code}`);
  o.push(`- ${h.faults.length} faults in ${h.heals.length} groups over ${((h.nemesisEnd - h.nemesisStart) / 1000).toFixed(0)} s of nemesis, ${((h.runEnd - h.runStart) / 1000).toFixed(0)} s in all`);
  o.push(`- 3 nats-servers (R3), ${h.nodes.length} route nodes (lease ${h.leaseMs} ms, ${h.partitions} partitions), 2 sinks into clickhouse-server, ${info.agents} agents in 2 processes at ~${info.callsPerSec} calls/s on ${h.routes.length} routes`);
  o.push(`- bound after a heal: lease time + 1 s = ${boundMs(h)} ms; fencing tolerance ${FENCE_TOLERANCE_MS} ms; idle window counted after ${IDLE_SETTLE_MS} ms`);
  for (const n of info.notes) o.push(`- note: ${n}`);
  o.push('', '![timeline](timeline.svg)', '');
  o.push('## Figures', '', '| figure | value | target |', '|---|---|---|');
  for (const [k, val] of Object.entries(v.figures) as Array<[string, number]>) {
    const u = FIGURE_UNITS[k];
    o.push(`| \`${k}\` | ${val.toLocaleString('en-US')} ${u?.unit ?? ''} | ${u?.target ?? ''} |`);
  }
  o.push('', '## Checks', '');
  for (const c of v.checks) {
    o.push(`### ${c.ok ? 'held' : 'FAILED'}: ${c.title} (\`${c.id}\`)`, '');
    for (const n of c.notes) o.push(`- ${n}`);
    if (c.violations.length > 0) {
      if (c.notes.length > 0) o.push('');
      for (const x of c.violations.slice(0, 40)) o.push(`1. ${x.what}`);
      if (c.violations.length > 40) o.push(`1. … ${c.violations.length - 40} more in report.json`);
    }
    o.push('');
  }
  o.push('## Seen on the bus', '');
  if (h.leaseRenumberedCount > 0) {
    const ex = h.leaseRenumbered
      .slice(0, 5)
      .map((r) => `partition ${r.p}, ${r.node ?? 'a delete'}'s record of ${rel(h, r.created)}: ${r.revs.map((x) => `rev ${x.rev} (${x.via}, stamped ${rel(h, x.created)})`).join(', ')}`);
    o.push(`${h.leaseRenumberedCount} lease records were seen under two or more revisions: the same bytes (holder, its clock, its incarnation) stored twice in the leases bucket, or numbered differently by the servers answering (a lease is compared and set by revision). E.g. ${ex.join('; ')}.`, '');
  } else o.push('Every lease record was seen under one revision.', '');
  o.push('## Faults and heals', '', '| group | fault | target | started | process up | healed (JetStream writable) | unowned after heal |', '|---|---|---|---|---|---|---|');
  for (const heal of h.heals) {
    const hv = v.heals.find((x) => x.group === heal.group);
    for (const f of h.faults.filter((x) => x.group === heal.group)) {
      o.push(`| ${heal.group} | ${f.kind} | ${f.target} (${f.detail}) | ${rel(h, f.start)} | ${rel(h, f.up)} | ${rel(h, heal.at)} | ${hv && Number.isFinite(hv.unownedAfterMs) ? `${Math.round(hv.unownedAfterMs)} ms` : '–'} |`);
    }
  }
  o.push('', '## Agents', '', '| agent | reports made | acknowledged | pending | dropped | no host | stale updates ignored |', '|---|---|---|---|---|---|---|');
  for (const a of h.agents) o.push(`| ${a.agent} | ${a.made} | ${a.acked} | ${a.pending} | ${a.dropped} | ${a.noHost} | ${a.staleUpdates} |`);
  o.push('', `Lease samples that failed to read the bucket: ${h.leaseSampleFailures.length}. Lease revisions recorded: ${h.leases.length}; route states recorded: ${h.routeMsgs.length}; versions applied at agents: ${h.applied.length}; readiness samples: ${h.ready.length}.`, '');
  return o.join('\n');
}

/** Writes report.md, report.json, timeline.svg and history.json.gz into `dir`; returns their paths. */
export function writeReport(dir: string, h: History, v: Verdict, info: RunInfo): { markdown: string; json: string; svg: string; history: string } {
  mkdirSync(dir, { recursive: true });
  const paths = { markdown: join(dir, 'report.md'), json: join(dir, 'report.json'), svg: join(dir, 'timeline.svg'), history: join(dir, 'history.json.gz') };
  writeFileSync(paths.markdown, renderMarkdown(h, v, info));
  writeFileSync(paths.json, JSON.stringify({ seed: h.seed, info, figures: v.figures, checks: v.checks, heals: v.heals, faults: h.faults, agents: h.agents, leaseRenumberedCount: h.leaseRenumberedCount, leaseRenumbered: h.leaseRenumbered.slice(0, 20) }, null, 2) + '\n');
  writeFileSync(paths.svg, renderTimeline(h, v));
  writeFileSync(paths.history, gzipSync(JSON.stringify(h)));
  return paths;
}
