import { expect } from 'chai';
import fc from 'fast-check';
import { RouteActor } from '../../actors/route.ts';
import { CheckpointStore } from '../../src/cluster/checkpoints.ts';
import { encode } from '../../schemas/codec.ts';
import type { Profile, RegistryEntry, ReportBatch } from '../../schemas/messages.ts';
import { entry as routeEntry } from '../helpers/route-entry.ts';

const T0 = 1_700_000_000_000;
const IPS = ['10.0.0.1', '10.0.0.2', '10.0.0.3', '10.0.0.4'];

/** The route actor tests' entry of four hosts, every other one in zone `a` when `zones`. */
function entry(profile: Profile, params: Record<string, number>, zones: boolean): RegistryEntry {
  const e = routeEntry(IPS.length, profile, params);
  if (zones) e.hosts = e.hosts.map((h, i) => (i % 2 === 0 ? { ...h, zone: 'a' } : h));
  return e;
}

/** A route after some reports, ticks and flushes: ejected, probing and healthy hosts, trial agents, load figures, maybe pending events. */
const routes = fc
  .record({
    profile: fc.constantFrom<Profile>('default', 'lars'),
    params: fc.constantFrom<Record<string, number>>({}, { contin_err_limit: 3, base_ejection_time: 0.2 }, { idle_timeout: 2, weight_update_period: 0.5 }),
    zones: fc.boolean(),
    steps: fc.array(
      fc.record({
        sender: fc.constantFrom('a', 'b'),
        reports: fc.array(fc.tuple(fc.integer({ min: 0, max: 3 }), fc.constantFrom(0, 1), fc.integer({ min: 1, max: 50 })), { maxLength: 20 }),
        util: fc.option(fc.double({ min: 0, max: 1, noNaN: true }), { nil: undefined }),
        waitMs: fc.integer({ min: 0, max: 700 }),
        flush: fc.boolean(),
      }),
      { maxLength: 12 },
    ),
    removed: fc.boolean(),
  })
  .map(({ profile, params, zones, steps, removed }) => {
    let t = T0;
    const r = new RouteActor({ modid: 1, cmdid: 2, nodeId: 'n', entry: entry(profile, params, zones), now: t });
    for (const s of steps) {
      const b: ReportBatch = { v: 1, sender: s.sender, modid: 1, cmdid: 2, ts: t, hosts: IPS.map((ip) => [ip, 8000] as [string, number]), reports: s.reports.map(([h, rc, lat]) => [h, rc, lat, 0] as [number, number, number, number]) };
      if (s.util !== undefined) b.utilization = [[0, s.util]];
      r.ingest(b, t);
      t += s.waitMs;
      r.tick(t);
      if (s.flush) r.flush(t);
    }
    if (removed) r.remove(t);
    return r.checkpoint(t);
  });

/** The value as JSON has it: fields holding undefined left out. */
function withoutUndefined(x: unknown): unknown {
  return JSON.parse(JSON.stringify(x)) as unknown;
}

describe('checkpoint records - what the checkpoints bucket stores', () => {
  it('checkpoint records - a record decodes to the checkpoint and the revision it was written with, whatever the route went through', () => {
    fc.assert(
      fc.property(routes, fc.option(fc.integer({ min: 0, max: 2 ** 40 }), { nil: undefined }), (cp, rev) => {
        const bytes = CheckpointStore.encodeRecord(cp, T0 + 5, rev);
        const back = CheckpointStore.decodeRecord(bytes);
        expect(back).to.not.equal(undefined);
        // a field one host has and another has not (zone) reads as undefined on the other
        expect(withoutUndefined(back!.checkpoint)).to.deep.equal(withoutUndefined(cp));
        for (const h of back!.checkpoint.hosts) expect(h.zone === undefined || typeof h.zone === 'string').to.equal(true);
        expect(back!.ts).to.equal(T0 + 5);
        expect(back!.rev).to.equal(rev);
        // the same inputs give the same bytes (a handover compares digests)
        expect(CheckpointStore.encodeRecord(cp, T0 + 5, rev)).to.deep.equal(bytes);
      }),
      { numRuns: 200 },
    );
  });

  it('checkpoint records - a host that reported a utilization near 0 (a denormal) still has a record that decodes', () => {
    const r = new RouteActor({ modid: 1, cmdid: 2, nodeId: 'n', entry: entry('default', { weight_update_period: 0.5 }, false), now: T0 });
    r.ingest({ v: 1, sender: 'a', modid: 1, cmdid: 2, ts: T0, hosts: [[IPS[0]!, 8000]], reports: [[0, 0, 5, 0]], utilization: [[0, Number.MIN_VALUE]] }, T0);
    r.tick(T0 + 500);
    const cp = r.checkpoint(T0 + 500);
    expect(cp.hosts.every((h) => Number.isFinite(h.load_weight ?? 0))).to.equal(true);
    expect(CheckpointStore.decodeRecord(CheckpointStore.encodeRecord(cp, T0 + 500, 1))).to.not.equal(undefined);
  });

  it('checkpoint records - version 1 records (each host a map, every parameter) are read as before', () => {
    fc.assert(
      fc.property(routes, (cp) => {
        const v1 = encode({ v: 1, checkpoint: cp, ts: T0, rev: 7 });
        expect(CheckpointStore.decodeRecord(v1)).to.deep.equal({ checkpoint: cp, ts: T0, rev: 7 });
        expect(CheckpointStore.encodeRecord(cp, T0, 7).length, 'version 2 is smaller').to.be.below(v1.length);
      }),
      { numRuns: 50 },
    );
  });

  it('checkpoint records - malformed ones are refused, not half read', () => {
    const cp = fc.sample(routes, 50).find((c) => c.hosts.length > 0)!;
    const good = CheckpointStore.decodeRecord(CheckpointStore.encodeRecord(cp, T0, 1));
    expect(good).to.not.equal(undefined);
    const packed = (mutate: (c: Record<string, unknown>) => void): Uint8Array => {
      const r = JSON.parse(JSON.stringify({ v: 2, checkpoint: cp, ts: T0 })) as { checkpoint: Record<string, unknown> };
      const hosts = cp.hosts as unknown as Array<Record<string, unknown>>;
      const keys = [...new Set(hosts.flatMap((h) => Object.keys(h)))];
      r.checkpoint['hosts'] = { keys, rows: hosts.map((h) => keys.map((k) => h[k] ?? null)) };
      r.checkpoint['params'] = {};
      mutate(r.checkpoint);
      return encode(r);
    };
    expect(CheckpointStore.decodeRecord(packed(() => undefined)), 'the test builds a valid record').to.not.equal(undefined);
    expect(CheckpointStore.decodeRecord(packed((c) => ((c['hosts'] as { rows: unknown[][] }).rows[0]!.length = 2)))).to.equal(undefined);
    expect(CheckpointStore.decodeRecord(packed((c) => ((c['hosts'] as { keys: unknown[] }).keys[0] = 7)))).to.equal(undefined);
    expect(CheckpointStore.decodeRecord(packed((c) => (c['hosts'] = [])))).to.equal(undefined);
    expect(CheckpointStore.decodeRecord(packed((c) => (c['params'] = { idle_timeout: 'x' })))).to.equal(undefined);
    expect(CheckpointStore.decodeRecord(packed((c) => (c['profile'] = 'other')))).to.equal(undefined);
    expect(CheckpointStore.decodeRecord(encode({ v: 3, checkpoint: cp, ts: T0 }))).to.equal(undefined);
  });
});
