import { expect } from 'chai';
import fc from 'fast-check';
import { Packr } from 'msgpackr';
import { validateRouteState, type RouteState } from '../../schemas/messages.ts';
import { encode, tryDecode } from '../../schemas/codec.ts';
import { RouteStateReader, type RouteStateRead } from '../../src/agent/route-state-reader.ts';
import { routeState, routeStateMutations } from './contract-arbitraries.ts';

/** What the follower did before the reader: decode, then validate. */
function general(bytes: Uint8Array): RouteStateRead {
  const d = tryDecode(bytes);
  if (!d.ok) return { ok: false, kind: 'malformed', detail: d.error.message };
  return validateRouteState(d.value);
}

function expectSame(got: RouteStateRead, want: RouteStateRead, what: string): void {
  expect(got.ok, `${what}: ok`).to.equal(want.ok);
  if (got.ok && want.ok) {
    expect(got.value, `${what}: value`).to.deep.equal(want.value);
    // key order too: the HTTP API and the console print states as they are
    expect(JSON.stringify(got.value), `${what}: key order`).to.equal(JSON.stringify(want.value));
  } else if (!got.ok && !want.ok) {
    expect([got.kind, got.detail], `${what}: rejection`).to.deep.equal([want.kind, want.detail]);
  }
}

const host = (i: number, over: Record<string, unknown> = {}) => ({ ip: `10.0.0.${i + 1}`, port: 8000 + i, weight: 100, zone: null, state: 'healthy', reason: 'registered', since: 1_700_000_000_000, pick_weight: 100, ...over });
const state = (version: number, hosts: Array<Record<string, unknown>>) => ({ v: 1, sender: 'node-1', modid: 7, cmdid: 1, version, ts: 1_700_000_000_000 + version, profile: 'default', panic: false, removed: false, probe_num: 10, hosts });

describe('route state reader', () => {
  it('route state reader - a valid state reads as decode + validate reads it, key order included', () => {
    fc.assert(
      fc.property(routeState, (s) => {
        const bytes = encode(s);
        expectSame(new RouteStateReader().read(bytes), general(bytes), 'fresh reader');
      }),
      { numRuns: 300 },
    );
  });

  it('route state reader - after a state, the next one reuses the hosts whose bytes did not change and reads the others', () => {
    const reader = new RouteStateReader();
    const hosts = Array.from({ length: 10 }, (_, i) => host(i));
    const a = reader.read(encode(state(1, hosts)));
    expect(a.ok).to.equal(true);
    expect(reader.counters).to.include({ fast: 1, readHosts: 10, reusedHosts: 0 });
    const changed = hosts.map((h, i) => (i === 3 ? { ...h, state: 'overloaded', reason: 'error_rate', pick_weight: 0 } : h));
    const bytes = encode(state(2, changed));
    const b = reader.read(bytes);
    expectSame(b, general(bytes), 'second state');
    expect(reader.counters).to.include({ fast: 2, readHosts: 11, reusedHosts: 9 });
    if (!a.ok || !b.ok) throw new Error('unreachable');
    // unchanged hosts are the same objects; the changed one is new
    expect(b.value.hosts[0]).to.equal(a.value.hosts[0]);
    expect(b.value.hosts[3]).to.not.equal(a.value.hosts[3]);
    expect(b.value.hosts[3]!.state).to.equal('overloaded');
    // a host moved to another index is read again (compared by position), and still right
    const moved = [changed[1]!, changed[0]!, ...changed.slice(2)];
    const c = reader.read(encode(state(3, moved)));
    expectSame(c, general(encode(state(3, moved))), 'moved hosts');
  });

  it('route state reader - a sequence of states with random host changes reads as the general path reads each', () => {
    const change = fc.record({ at: fc.nat(9), field: fc.constantFrom('state', 'pick_weight', 'weight', 'zone', 'trial_agent', 'extra'), n: fc.nat(100) });
    fc.assert(
      fc.property(fc.array(fc.array(change, { maxLength: 4 }), { minLength: 1, maxLength: 8 }), fc.integer({ min: 0, max: 12 }), (steps, nHosts) => {
        const reader = new RouteStateReader();
        let hosts: Array<Record<string, unknown>> = Array.from({ length: nHosts }, (_, i) => host(i));
        let version = 1;
        for (const step of steps) {
          hosts = hosts.map((h) => ({ ...h }));
          for (const c of step) {
            const h = hosts[c.at % Math.max(1, hosts.length)];
            if (h === undefined) continue;
            if (c.field === 'state') h['state'] = (['healthy', 'overloaded', 'probing', 'draining'] as const)[c.n % 4];
            else if (c.field === 'pick_weight') h['pick_weight'] = c.n / 3;
            else if (c.field === 'weight') h['weight'] = c.n;
            else if (c.field === 'zone') h['zone'] = c.n % 2 ? `z${c.n}` : null;
            else if (c.field === 'trial_agent') h['trial_agent'] = `agent-${c.n}`;
            // an unknown key: kept, as the contract says readers do
            else h[`x${c.n % 3}`] = c.n;
          }
          const bytes = encode(state(version++, hosts));
          expectSame(reader.read(bytes), general(bytes), `version ${version - 1}`);
        }
      }),
      { numRuns: 200 },
    );
  });

  it('route state reader - hosts written in any key order, with non-ASCII text, read as the general path reads them', () => {
    const shuffled = (o: Record<string, unknown>, order: number[]): Record<string, unknown> => {
      const keys = Object.keys(o);
      const out: Record<string, unknown> = {};
      for (const i of order) if (i < keys.length && !(keys[i]! in out)) out[keys[i]!] = o[keys[i]!];
      for (const k of keys) if (!(k in out)) out[k] = o[k];
      return out;
    };
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.array(fc.nat(9), { maxLength: 9 }), fc.constantFrom('registered', 'error_rate', 'é', 'ré', '\u{1F600}'), fc.boolean()), { minLength: 1, maxLength: 6 }),
        (steps) => {
          const reader = new RouteStateReader();
          let version = 1;
          for (const [order, reason, trial] of steps) {
            const hosts = Array.from({ length: 4 }, (_, i) => shuffled(host(i, { reason, ...(trial ? { trial_agent: 'agent-é' } : {}) }), i % 2 ? order : []));
            const bytes = encode(state(version++, hosts));
            expectSame(reader.read(bytes), general(bytes), `order ${order.join(',')} reason ${reason}`);
          }
        },
      ),
      { numRuns: 200 },
    );
  });

  it('route state reader - every broken rule is refused with the general path kind and detail, after a good state too', () => {
    for (const m of routeStateMutations) {
      fc.assert(
        fc.property(routeState, fc.double({ min: 0, max: 0.999, noNaN: true }), (s, at) => {
          const broken = m.apply(s as Record<string, unknown>, at);
          let bytes: Uint8Array;
          try {
            bytes = encode(broken);
          } catch {
            return; // not encodable (e.g. a value msgpack has no form for): nothing to read
          }
          expectSame(new RouteStateReader().read(bytes), general(bytes), `${m.name}, fresh`);
          const primed = new RouteStateReader();
          primed.read(encode(s));
          const got = primed.read(bytes);
          expectSame(got, general(bytes), `${m.name}, after the good state`);
          expect(got.ok, m.name).to.equal(false);
        }),
        { numRuns: 25 },
      );
    }
  });

  it('route state reader - corrupt bytes read as the general path reads them, and never poison the next state', () => {
    fc.assert(
      fc.property(routeState, fc.array(fc.tuple(fc.nat(), fc.nat(255)), { minLength: 1, maxLength: 4 }), fc.nat(), (s, flips, cut) => {
        const good = encode(s);
        const reader = new RouteStateReader();
        reader.read(good);
        const bad = new Uint8Array(good);
        for (const [at, byte] of flips) bad[at % bad.length] = byte;
        expectSame(reader.read(bad), general(bad), 'flipped bytes');
        const short = good.subarray(0, cut % good.length);
        expectSame(reader.read(short), general(short), 'truncated');
        // the reader's memory of hosts is only ever a state it accepted
        const again = encode({ ...(s as RouteState), version: (s as RouteState).version });
        expectSame(reader.read(again), general(again), 'good state again');
      }),
      { numRuns: 500 },
    );
  });

  it('route state reader - encodings the fast path leaves to the codec are read by the general path, with the same result', () => {
    const reader = new RouteStateReader();
    const base = state(1, [host(0), host(1)]);
    reader.read(encode(base));
    const packr = new Packr({ useRecords: false, variableMapSize: true, mapsAsObjects: false });
    const cases: Array<[string, Uint8Array]> = [
      // a map with an integer key: the codec makes it the property "5"
      ['integer key', packr.pack(new Map<unknown, unknown>([...Object.entries(base), [5, 1]]))],
      ['nested unknown value', encode({ ...base, extra: { a: [1, 2] } })],
      ['trailing bytes', new Uint8Array([...encode(base), 0x01])],
      ['bin value', encode({ ...base, blob: new Uint8Array([1, 2, 3]) })],
      ['__proto__ key', packr.pack(new Map<unknown, unknown>([...Object.entries(base), ['__proto__', 1]]))],
    ];
    // a key given twice: the codec keeps the last
    const dup = encode(base);
    const twice = new Uint8Array([0x80 + Object.keys(base).length + 1, ...dup.subarray(1), 0xa2, 0x74, 0x73, 0x05]);
    cases.push(['key given twice', twice]);
    const before = reader.counters.general;
    for (const [what, bytes] of cases) expectSame(reader.read(bytes), general(bytes), what);
    expect(reader.counters.general - before, 'every case went the general path').to.equal(cases.length);
    // and a good state after them still takes the fast path, reusing the hosts it knows
    const next = reader.read(encode({ ...base, version: 2 }));
    expect(next.ok).to.equal(true);
    expect(reader.counters.reusedHosts).to.equal(2);
  });
});
