/**
 * The nemesis, short run (test/nemesis/, docs/chaos.md): a 3-server NATS
 * cluster (R3), 3 `lars node` and 2 `lars sink` processes, clickhouse-server
 * and agents in two processes under load with hosts failing at times, while
 * a fixed, seeded list of faults runs: kill -9 of the nats-server leading
 * the leases bucket, SIGSTOP/SIGCONT of a route node past its lease, kill -9
 * of a sink, a graceful restart of the server leading the reports stream, a
 * node killed while the leases bucket's leader is paused (an overlapping
 * pair that keeps the quorum), and a full-cluster restart. Then half the routes lose their callers for a while, everything
 * is drained, and each check below reads the whole recorded history.
 * `npm run chaos` runs the same harness for as long as asked.
 */
import { expect } from 'chai';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runNemesis, codeVersion, type NemesisRun } from '../nemesis/run.ts';
import { shortPlan } from '../nemesis/schedule.ts';
import { writeReport } from '../nemesis/report.ts';
import { CheckId, type CheckResult } from '../nemesis/checks.ts';

const SEED = 17;
const LEASE_MS = 2000;
const CALLS_PER_SEC = 300;

describe('nemesis - short run: faults on servers, nodes and sinks, checked on the full history', function () {
  // start-up ~25 s, six fault groups ~100 s, idle routes and drain ~35 s
  this.timeout(180_000);
  let run: NemesisRun | undefined;
  let failure: Error | undefined;
  const out = process.env['LARS_NEMESIS_OUT'] ?? mkdtempSync(join(tmpdir(), 'lars-nemesis-'));

  before(async function () {
    this.timeout(180_000);
    try {
      run = await runNemesis({
        seed: SEED,
        plan: shortPlan(LEASE_MS),
        leaseMs: LEASE_MS,
        partitions: 64,
        routes: 10,
        hostsPerRoute: 4,
        agentsPerProcess: 5,
        routesPerAgent: 4,
        callsPerSec: CALLS_PER_SEC,
        batchMaxDelayMs: 100,
        warmupMs: 3000,
        idleMs: 15_000,
        reportsMaxBytes: 64 * 2 ** 20,
        workDir: out,
        log: (l) => console.log(`      ${l}`),
      });
      const paths = writeReport(out, run.history, run.verdict, { code: codeVersion(), callsPerSec: CALLS_PER_SEC, agents: 10, command: 'npx mocha --config .mocharc.integration.json test/integration/nemesis.test.ts', notes: run.notes });
      console.log(`      report: ${paths.markdown}`);
      for (const n of run.notes) console.log(`      note: ${n}`);
      console.log(`      figures: ${JSON.stringify(run.verdict.figures)}`);
    } catch (err) {
      failure = err as Error;
    }
  });

  function check(id: CheckId): CheckResult {
    if (failure) throw failure;
    const c = run!.verdict.checks.find((x) => x.id === id)!;
    return c;
  }

  function expectHeld(c: CheckResult): void {
    const listed = c.violations.slice(0, 10).map((v) => `  - ${v.what}`);
    expect(c.violations.length, `${c.title}: ${c.violations.length} violations\n${listed.join('\n')}\n  (${c.notes.join('; ')}; report in ${out})`).to.equal(0);
  }

  it('nemesis - the run made reports, injected every planned fault and healed each group', () => {
    if (failure) throw failure;
    const h = run!.history;
    expect(h.faults.length, 'faults injected').to.equal(shortPlan(LEASE_MS).reduce((s, g) => s + g.faults.length, 0));
    expect(h.agents.reduce((s, a) => s + a.made, 0), 'reports made').to.be.greaterThan(10_000);
    expect(h.leases.length, 'lease revisions recorded').to.be.greaterThan(h.partitions);
    expect(h.routeMsgs.length, 'route states recorded').to.be.greaterThan(h.routes.length);
  });

  it('nemesis - every acknowledged report is stored in ClickHouse exactly once', () => {
    expectHeld(check(CheckId.exactlyOnce));
  });

  it('nemesis - no route version goes backwards at any agent, and one version means one content', () => {
    expectHeld(check(CheckId.versions));
  });

  it('nemesis - no state is published for a partition whose lease the node no longer held', () => {
    expectHeld(check(CheckId.fencing));
  });

  it('nemesis - every partition is owned within the lease time + 1 s after each fault heals', () => {
    expectHeld(check(CheckId.healing));
  });

  it('nemesis - readiness agrees with ownership at every sample', () => {
    expectHeld(check(CheckId.readiness));
  });

  it('nemesis - no route is republished without traffic', () => {
    expectHeld(check(CheckId.idle));
  });
});
