import { expect } from 'chai';
import { ADMIN_EJECT_MS, ADMIN_EJECTION, ejectionMs, ejectionTimes } from '../../actors/ejection.ts';
import { hostMachine, step, type HostFields } from '../../actors/host-machine.ts';
import { resolveParams, type RouteParams } from '../../actors/params.ts';
import { RouteActor } from '../../actors/route.ts';
import type { Profile, RouteState } from '../../schemas/messages.ts';
import { entry } from '../helpers/route-entry.ts';

const T0 = 1_700_000_000_000;
const H1 = '10.0.0.1:8000';

function params(profile: Profile, over: Record<string, number> = {}): RouteParams {
  const r = resolveParams(profile, over);
  if (!r.ok) throw new Error(r.error);
  return r.params;
}

describe('ejection - the one rule for how long an ejection lasts', () => {
  it('ejection - default profile: the n-th ejection lasts n × base_ejection_time, up to max_ejection_time', () => {
    const t = ejectionTimes('default', params('default', { base_ejection_time: 5, max_ejection_time: 12 }));
    expect([1, 2, 3, 4].map((n) => ejectionMs(t, 'error_rate', n))).to.deep.equal([5_000, 10_000, 12_000, 12_000]);
    expect(ejectionMs(t, 'latency_outlier', 2)).to.equal(10_000);
  });

  it('ejection - default profile: after a failed probe the base is multiplied by probe_failure_multiplier, still up to the cap', () => {
    const t = ejectionTimes('default', params('default', { base_ejection_time: 5, max_ejection_time: 300, probe_failure_multiplier: 3 }));
    expect(ejectionMs(t, 'probe_failure', 1)).to.equal(15_000);
    expect(ejectionMs(t, 'probe_failure', 2)).to.equal(30_000);
    expect(ejectionMs(t, 'probe_failure', 100)).to.equal(300_000);
    // a cause not weighed: no multiplier
    expect(ejectionMs(t, undefined, 1)).to.equal(5_000);
  });

  it('ejection - lars profile: overload_timeout, however often and for whatever reason', () => {
    const t = ejectionTimes('lars', params('lars', { overload_timeout: 7 }));
    for (const n of [1, 2, 10]) for (const reason of ['error_rate', 'probe_failure', 'profile_changed'] as const) expect(ejectionMs(t, reason, n)).to.equal(7_000);
  });

  it("ejection - an operator's ejection lasts a century, whatever the count", () => {
    expect(ejectionMs(ADMIN_EJECTION, 'admin_eject', 1)).to.equal(ADMIN_EJECT_MS);
    expect(ejectionMs(ADMIN_EJECTION, 'admin_eject', 5)).to.equal(ADMIN_EJECT_MS);
  });

  it("ejection - the machine's EJECT stamps a deadline of exactly ejectionMs for the host's count after it", () => {
    const t = ejectionTimes('default', params('default'));
    for (const reason of ['consecutive_errors', 'probe_failure'] as const) {
      for (const before of [0, 1, 4]) {
        const f: HostFields = { state: before === 0 ? 'healthy' : 'probing', since: T0, reason: 'registered', ejections: before, ejectUntil: 0 };
        step(hostMachine, f, { type: 'EJECT', reason, now: T0 + 1, ...t });
        expect(f.ejectUntil - (T0 + 1), `${reason}, ${before} before`).to.equal(ejectionMs(t, reason, before + 1));
      }
    }
  });

  it('ejection - a host restored from a published state ejected ends one base ejection time from now (the published reason is not weighed)', () => {
    for (const reason of ['error_rate', 'probe_failure'] as const) {
      const state = published([{ state: 'overloaded', reason }]);
      const r = new RouteActor({ modid: 1, cmdid: 2, nodeId: 'n2', entry: entry(1, 'default'), now: T0, restored: state });
      expect(r.host(H1), reason).to.include({ state: 'overloaded', ejections: 1, ejectUntil: T0 + params('default').base_ejection_time * 1000 });
    }
    const lars = new RouteActor({ modid: 1, cmdid: 2, nodeId: 'n2', entry: entry(1, 'lars'), now: T0, restored: published([{ state: 'probing', reason: 'timeout' }]) });
    expect(lars.host(H1)).to.include({ state: 'overloaded', ejectUntil: T0 + params('lars').overload_timeout * 1000 });
  });

  it('ejection - a restored ejection keeps to max_ejection_time like any other', () => {
    const e = entry(1, 'default', { base_ejection_time: 10, max_ejection_time: 5 });
    const r = new RouteActor({ modid: 1, cmdid: 2, nodeId: 'n2', entry: e, now: T0, restored: published([{ state: 'overloaded', reason: 'error_rate' }]) });
    expect(r.host(H1)!.ejectUntil).to.equal(T0 + 5_000);
  });
});

function published(hosts: Array<{ state: 'overloaded' | 'probing'; reason: 'error_rate' | 'probe_failure' | 'timeout' }>): RouteState {
  return {
    v: 1,
    sender: 'n1',
    modid: 1,
    cmdid: 2,
    version: 4,
    ts: T0 - 1_000,
    profile: 'default',
    panic: false,
    removed: false,
    probe_num: 10,
    hosts: hosts.map((h, i) => ({ ip: `10.0.0.${i + 1}`, port: 8000, weight: 100, state: h.state, reason: h.reason, since: T0 - 1_000, pick_weight: 0 })),
  };
}
