import { expect } from 'chai';
import fc from 'fast-check';
import { QUIET_MS, RouteActor } from '../../actors/route.ts';
import { IPS, SHORT_PARAMS } from '../helpers/short-params.ts';
import type { Profile, RegistryEntry, RegistryHost, ReportBatch } from '../../schemas/messages.ts';

const T0 = 1_700_000_000_000;
const TICK_MS = 100;
/** Short times, so that windows, ejections, decays, drains, trials and load periods all come round within a run. */
const PARAMS = SHORT_PARAMS;


type Step =
  | { kind: 'wait'; ms: number }
  | { kind: 'batch'; sender: string; reports: Array<[host: number, retcode: number, latency: number]>; util: Array<[host: number, util: number]> }
  | { kind: 'registry'; hosts: number[]; admin: Array<'drained' | 'ejected' | undefined>; weight: number };

function registryEntry(profile: Profile, hosts: number[], admin: ReadonlyArray<'drained' | 'ejected' | undefined>, weight: number): RegistryEntry {
  return {
    v: 1,
    modid: 1,
    cmdid: 2,
    profile,
    params: PARAMS,
    hosts: hosts.map((i, k): RegistryHost => {
      const h: RegistryHost = { ip: IPS[i]!, port: 8000, weight: k === 0 ? weight : 100 };
      const mark = admin[k];
      if (mark) h.admin = { state: mark, by: 'test', ts: 0 };
      return h;
    }),
    updated_by: 'test',
    ts: 0,
  };
}

const host = fc.integer({ min: 0, max: IPS.length - 1 });
const step: fc.Arbitrary<Step> = fc.oneof(
  { weight: 6, arbitrary: fc.integer({ min: 1, max: 900 }).map((ms): Step => ({ kind: 'wait', ms })) },
  {
    weight: 6,
    arbitrary: fc
      .record({
        sender: fc.constantFrom('a', 'b', 'c'),
        reports: fc.array(fc.tuple(host, fc.constantFrom(0, 0, 1), fc.integer({ min: 1, max: 80 })), { maxLength: 12 }),
        util: fc.array(fc.tuple(host, fc.double({ min: 0, max: 1, noNaN: true })), { maxLength: 3 }),
      })
      .map((b): Step => ({ kind: 'batch', ...b })),
  },
  {
    weight: 1,
    arbitrary: fc
      .record({
        hosts: fc.uniqueArray(host, { minLength: 1, maxLength: IPS.length }),
        admin: fc.array(fc.constantFrom<'drained' | 'ejected' | undefined>(undefined, undefined, undefined, 'drained', 'ejected'), { maxLength: IPS.length }),
        weight: fc.constantFrom(50, 100),
      })
      .map((r): Step => ({ kind: 'registry', ...r })),
  },
);

function batchOf(s: Extract<Step, { kind: 'batch' }>, t: number): ReportBatch {
  const b: ReportBatch = {
    v: 1,
    sender: s.sender,
    modid: 1,
    cmdid: 2,
    ts: t,
    hosts: IPS.map((ip) => [ip, 8000] as [string, number]),
    reports: s.reports.map(([h, rc, lat]) => [h, rc, lat, 0] as [number, number, number, number]),
  };
  if (s.util.length > 0) b.utilization = s.util;
  return b;
}

describe('route tick schedule - nextTick', () => {
  it('route - ticked only when something reached it or its nextTick has come, a route behaves exactly as one ticked every interval until it has been quiet for QUIET_MS', () => {
    fc.assert(
      fc.property(fc.constantFrom<Profile>('default', 'lars'), fc.array(step, { minLength: 1, maxLength: 60 }), (profile, steps) => {
        const first = registryEntry(profile, [0, 1, 2, 3], [], 100);
        // `every` is ticked at each interval; `scheduled` only when touched since its last tick or due.
        const every = new RouteActor({ modid: 1, cmdid: 2, nodeId: 'n', entry: first, now: T0 });
        const scheduled = new RouteActor({ modid: 1, cmdid: 2, nodeId: 'n', entry: first, now: T0 });
        let t = T0;
        let touched = true;
        // the reference is ticked at every interval, except once quiet (QUIET_MS after the last input, one tick at that point)
        let lastInput = T0;
        let lastEveryTick = -Infinity;
        const tickTo = (end: number): void => {
          // ticks on the interval grid up to `end`, as a node's timer does
          for (let next = t - (t % TICK_MS) + TICK_MS; next <= end; next += TICK_MS) {
            if (lastEveryTick < lastInput + QUIET_MS) {
              every.tick(next);
              lastEveryTick = next;
            }
            if (touched || next >= scheduled.nextTick()) {
              scheduled.tick(next);
              touched = false;
            }
            compare(next);
          }
          t = end;
        };
        const compare = (at: number): void => {
          expect(scheduled.checkpoint(at), `at +${at - T0} ms`).to.deep.equal(every.checkpoint(at));
          expect(scheduled.flush(at), `flush at +${at - T0} ms`).to.deep.equal(every.flush(at));
        };
        for (const s of steps) {
          if (s.kind === 'wait') {
            tickTo(t + s.ms);
            continue;
          }
          if (s.kind === 'batch') {
            every.ingest(batchOf(s, t), t);
            scheduled.ingest(batchOf(s, t), t);
          } else {
            const e = registryEntry(profile, s.hosts, s.admin, s.weight);
            every.applyRegistry(e, t);
            scheduled.applyRegistry(e, t);
          }
          touched = true;
          lastInput = t;
          compare(t);
        }
        tickTo(t + 3000);
      }),
      { numRuns: 300 },
    );
  });

  it('route - an idle route is due at its next load period or window end, whichever comes first', () => {
    const r = new RouteActor({ modid: 1, cmdid: 2, nodeId: 'n', entry: registryEntry('default', [0, 1], [], 100), now: T0 });
    expect(r.nextTick()).to.equal(T0 + PARAMS.weight_update_period * 1000);
    const slow = new RouteActor({ modid: 1, cmdid: 2, nodeId: 'n', entry: { ...registryEntry('lars', [0, 1], [], 100), params: { idle_timeout: 15, weight_update_period: 4 } }, now: T0 });
    expect(slow.nextTick()).to.equal(T0 + 3_000);
  });

  it('route - a route quiet for QUIET_MS is due once more, then never by time alone; the next input brings what fell due meanwhile', () => {
    const entry = { ...registryEntry('default', [0, 1, 2, 3], [], 100), params: { ...PARAMS, base_ejection_time: 10, max_ejection_time: 60, idle_timeout: 60, weight_update_period: 60 } };
    const r = new RouteActor({ modid: 1, cmdid: 2, nodeId: 'n', entry, now: T0 });
    r.flush(T0);
    const batch = (t: number, failing: boolean): ReportBatch =>
      batchOf({ kind: 'batch', sender: 'a', util: [], reports: Array.from({ length: 40 }, (_, i): [number, number, number] => [i % 4, failing && i % 4 === 0 ? 1 : 0, 5]) }, t);
    // host 0 fails and is ejected for 10 s: its ejection ends by time, long after the last batch
    r.ingest(batch(T0, true), T0);
    r.tick(T0);
    expect(r.flush(T0)?.state.hosts.find((h) => h.ip === IPS[0])?.state).to.equal('overloaded');
    // ticked when due, up to QUIET_MS after the batch at the latest, then never by time
    const ticks: number[] = [];
    for (let due = r.nextTick(); due !== Infinity && ticks.length < 100; due = r.nextTick()) {
      ticks.push(due - T0);
      r.tick(due);
      r.flush(due);
    }
    expect(r.nextTick(), 'then never by time').to.equal(Infinity);
    expect(ticks.at(-1), 'the last tick by time').to.equal(QUIET_MS);
    expect(ticks.every((t) => t <= QUIET_MS), `ticks ${ticks.join(', ')}`).to.equal(true);
    expect(r.flush(T0 + QUIET_MS), 'still ejected when it went quiet').to.equal(undefined);
    expect(r.snapshot(T0 + QUIET_MS).hosts.find((h) => h.ip === IPS[0])?.state).to.equal('overloaded');
    const late = T0 + 60_000;
    // a batch comes: the ejection's end is applied at once, before its calls (host 0 probing from then on) ...
    r.ingest(batch(late, false), late);
    r.tick(late);
    const out = r.flush(late);
    expect(out?.events.map((e) => `${e.ip} ${e.from}->${e.to} ${e.reason}`)).to.deep.equal([`${IPS[0]} overloaded->probing timeout`, `${IPS[0]} probing->healthy probe_success`]);
    // ... so its successful calls to host 0 count as trial calls and bring it back, as on a route ticked all along
    expect(out?.state.hosts.find((h) => h.ip === IPS[0])?.state).to.equal('healthy');
  });
  it('route - fifteen errors after a long silence eject the host: the window left open while the route was quiet closes before they count', () => {
    for (const profile of ['default', 'lars'] as const) {
      const entry = { ...registryEntry(profile, [0, 1, 2, 3], [], 100), params: {} };
      const r = new RouteActor({ modid: 1, cmdid: 2, nodeId: 'n', entry, now: T0 });
      r.flush(T0);
      // quiet for far longer than a window (idle_timeout): the route is not ticked meanwhile (nextTick says so)
      for (let due = r.nextTick(); due !== Infinity; due = r.nextTick()) r.tick(due);
      const late = T0 + 120_000;
      // one batch, host 0 failing its fifteen calls in a row (contin_err_limit), as the first input since
      r.ingest(batchOf({ kind: 'batch', sender: 'a', util: [], reports: Array.from({ length: 15 }, (): [number, number, number] => [0, 503, 12]) }, late), late);
      r.tick(late);
      const out = r.flush(late);
      expect(out?.state.hosts.find((h) => h.ip === IPS[0])?.state, profile).to.equal('overloaded');
      expect(out?.events.map((e) => e.reason), profile).to.include('consecutive_errors');
    }
  });
});
