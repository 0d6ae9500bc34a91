/**
 * What a route publishes by time alone: after its last input (a report
 * batch, a registry write), a bounded number of versions within a bounded
 * time, then nothing (docs/state-machine.md, "What a route publishes").
 */
import { expect } from 'chai';
import fc from 'fast-check';
import { RouteActor } from '../../actors/route.ts';
import { resolveParams, type RouteParams } from '../../actors/params.ts';
import type { Profile, RegistryEntry, RegistryHost, ReportBatch } from '../../schemas/messages.ts';
import { entry } from '../helpers/route-entry.ts';
import { IPS, SHORT_PARAMS } from '../helpers/short-params.ts';

const T0 = 1_700_000_000_000;
const TICK_MS = 100;
/** Short times (SHORT_PARAMS), with a cap and a panic threshold that small routes reach. */
const PARAMS = { ...SHORT_PARAMS, max_ejection_percent: 40, panic_threshold: 60 };

/** Over PARAMS: a trial timeout longer than the ejections (a host entering probing after the last input names an agent), load weights on and off. */
const VARIANTS: Array<Record<string, number>> = [{}, { probe_trial_timeout: 3 }, { load_weighting: 1 }, { load_weighting: 0, slow_start_window: 0 }];

type Step =
  | { kind: 'wait'; ms: number }
  | { kind: 'batch'; sender: string; reports: Array<[host: number, retcode: number, latency: number]>; util: Array<[host: number, util: number]> }
  | { kind: 'registry'; hosts: number[]; admin: Array<'drained' | 'ejected' | undefined> };

function registryEntry(profile: Profile, params: Record<string, number>, hosts: number[], admin: ReadonlyArray<'drained' | 'ejected' | undefined>): RegistryEntry {
  return {
    v: 1,
    modid: 1,
    cmdid: 2,
    profile,
    params,
    hosts: hosts.map((i, k): RegistryHost => {
      const h: RegistryHost = { ip: IPS[i]!, port: 8000, weight: 100 };
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
  { weight: 5, arbitrary: fc.integer({ min: 1, max: 900 }).map((ms): Step => ({ kind: 'wait', ms })) },
  {
    weight: 8,
    arbitrary: fc
      .record({
        sender: fc.constantFrom('a', 'b', 'c'),
        // host 0 often fails, host 1 is often slow: ejections, probes, latency outliers and suspects
        reports: fc.array(
          fc.oneof(
            fc.tuple(fc.constant(0), fc.constantFrom(0, 1, 1), fc.integer({ min: 1, max: 20 })),
            fc.tuple(fc.constant(1), fc.constant(0), fc.integer({ min: 60, max: 200 })),
            fc.tuple(host, fc.constantFrom(0, 0, 0, 1), fc.integer({ min: 1, max: 20 })),
          ),
          { maxLength: 16 },
        ),
        util: fc.array(fc.tuple(host, fc.double({ min: 0.05, max: 1, noNaN: true })), { maxLength: 3 }),
      })
      .map((b): Step => ({ kind: 'batch', ...b })),
  },
  {
    weight: 1,
    arbitrary: fc
      .record({
        hosts: fc.uniqueArray(host, { minLength: 1, maxLength: IPS.length }),
        admin: fc.array(fc.constantFrom<'drained' | 'ejected' | undefined>(undefined, undefined, undefined, 'drained', 'ejected'), { maxLength: IPS.length }),
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

/** The documented bound on versions published by time alone after the last input, for a route of `hosts` hosts. */
export function idleVersionBound(profile: Profile, p: RouteParams, hosts: number): number {
  const ramp = p.slow_start_window > 0 ? Math.ceil(p.slow_start_window / p.weight_update_period) + 1 : 0;
  const load = p.load_weighting >= 1 ? 2 : 0;
  return hosts * (profile === 'lars' ? 2 + 2 * ramp + load : 4 + ramp + load);
}

/** The documented time after the last input, ms, past which a route publishes nothing by time alone. */
export function idleHorizonMs(p: RouteParams): number {
  const s =
    2 * p.idle_timeout +
    Math.max(p.max_ejection_time, p.overload_timeout) +
    2 * p.probe_trial_timeout +
    p.drain_time +
    p.weight_update_period +
    p.weight_blackout_period +
    p.weight_expiration_period +
    p.slow_start_window;
  return s * 1000;
}

function params(profile: Profile, over: Record<string, number>): RouteParams {
  const r = resolveParams(profile, over);
  if (!r.ok) throw new Error(r.error);
  return r.params;
}

describe('route idle - what a route publishes by time alone', () => {
  it('route idle - after its last input a route publishes at most the documented number of versions, within the documented time, then nothing', () => {
    fc.assert(
      fc.property(fc.constantFrom<Profile>('default', 'lars'), fc.constantFrom(...VARIANTS), fc.array(step, { minLength: 1, maxLength: 80 }), (profile, variant, steps) => {
        const given = { ...PARAMS, ...variant };
        const r = new RouteActor({ modid: 1, cmdid: 2, nodeId: 'n', entry: registryEntry(profile, given, [0, 1, 2, 3, 4], []), now: T0 });
        let t = T0;
        const tickTo = (end: number): void => {
          for (let next = t - (t % TICK_MS) + TICK_MS; next <= end; next += TICK_MS) {
            r.tick(next);
            r.flush(next);
          }
          t = end;
        };
        for (const s of steps) {
          if (s.kind === 'wait') tickTo(t + s.ms);
          else if (s.kind === 'batch') r.ingest(batchOf(s, t), t);
          else r.applyRegistry(registryEntry(profile, given, s.hosts, s.admin), t);
          r.flush(t);
        }
        // the last input was at t; from here on only ticks
        const last = t;
        const p = params(profile, given);
        const horizon = idleHorizonMs(p);
        // draining hosts included: they are still the route's
        const bound = idleVersionBound(profile, p, r.hostCount);
        const after: number[] = [];
        for (let now = last - (last % TICK_MS) + TICK_MS; now <= last + horizon + 60_000; now += TICK_MS) {
          r.tick(now);
          if (r.flush(now)) after.push(now - last);
        }
        expect(after.length, `versions after the last input at +ms ${after.join(', ')}`).to.be.at.most(bound);
        expect(after.filter((ms) => ms > horizon), `versions later than ${horizon} ms after the last input`).to.deep.equal([]);
      }),
      { numRuns: 400 },
    );
  });

  it('route idle - a latency outlier the ejection cap holds in keeps the route in panic through its window renewals without a version', () => {
    let t = T0;
    // 4 hosts, one ejection at most: host 1 ejected for errors, host 2 slow and held in (suspect); 2 of 4 well is under 60 %: panic
    const r = new RouteActor({ modid: 1, cmdid: 2, nodeId: 'n', entry: entry(4, 'default', { max_ejection_percent: 25, panic_threshold: 60 }), now: t });
    for (let i = 0; i < 15; i++) r.report('10.0.0.1:8000', 1, 5, t);
    for (let i = 0; i < 40; i++) for (let h = 2; h <= 4; h++) r.report(`10.0.0.${h}:8000`, 0, h === 2 ? 200 : 5, t);
    t += 100;
    r.tick(t);
    expect(r.host('10.0.0.1:8000')!.state).to.equal('overloaded');
    expect(r.host('10.0.0.2:8000')!.suspect).to.equal(true);
    expect(r.inPanic).to.equal(true);
    r.flush(t);
    // 10 idle minutes: windows renew every idle_timeout; host 1 goes probing once
    const versions: RouteStateLike[] = [];
    for (let now = t + 100; now <= t + 600_000; now += 100) {
      r.tick(now);
      const ch = r.flush(now);
      if (ch) versions.push({ at: now - t, panic: ch.state.panic, states: ch.state.hosts.map((h) => h.state).join(',') });
    }
    expect(versions, 'only the ejection ending').to.have.length(1);
    expect(versions[0]).to.deep.include({ panic: true, states: 'probing,healthy,healthy,healthy' });
  });
});

interface RouteStateLike {
  at: number;
  panic: boolean;
  states: string;
}
