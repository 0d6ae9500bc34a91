import { expect } from 'chai';
import { partitionOf, names, parseRouteTail, isValidPrefix } from '../../schemas/subjects.ts';
import { validateReportBatch, validateRouteState, validateRegistryEntry, validateRouteEvent, LIMITS } from '../../schemas/messages.ts';
import { encode, decode, tryDecode } from '../../schemas/codec.ts';

const batch = () => ({ v: 1, sender: 'a1', modid: 1, cmdid: 2, ts: 1_700_000_000_000, hosts: [['10.0.0.1', 80]], reports: [[0, 0, 1.5, 0], [0, 1, 20, 3]] });

describe('contract - subjects and partitions', () => {
  it('subjects - partition function matches the documented test vectors', () => {
    expect(partitionOf(1, 1, 64)).to.equal(5);
    expect(partitionOf(1, 2, 64)).to.equal(12);
    expect(partitionOf(100, 7, 64)).to.equal(19);
    expect(partitionOf(4294967295, 0, 64)).to.equal(60);
    for (let i = 0; i < 1000; i++) expect(partitionOf(i, i * 7, 16)).to.be.within(0, 15);
  });

  it('subjects - names are built from one prefix and validated', () => {
    const n = names('lars');
    expect(n.report(5, 1, 1)).to.equal('lars.report.5.1.1');
    expect(n.reportPartitionWildcard(5)).to.equal('lars.report.5.>');
    expect(n.route(1, 2)).to.equal('lars.route.1.2');
    expect(n.event(1, 2)).to.equal('lars.event.1.2');
    expect(n.registryBucket).to.equal('lars_registry');
    expect(n.reportsStream).to.equal('LARS_REPORTS');
    expect(names('my-app').eventsStream).to.equal('MY_APP_EVENTS');
    expect(() => names('a.b')).to.throw(RangeError);
    expect(isValidPrefix('a*')).to.equal(false);
  });

  it('subjects - route tail parsing accepts only two uint32 decimals', () => {
    expect(parseRouteTail('lars.report.3.10.20')).to.deep.equal({ modid: 10, cmdid: 20 });
    expect(parseRouteTail('lars.report.3.4294967295.0')).to.deep.equal({ modid: 4294967295, cmdid: 0 });
    for (const bad of ['lars.report.3.4294967296.0', 'lars.report.3.01.2', 'lars.report.3.a.2', 'x', 'lars.report.3..2', 'lars.report.3.-1.2']) {
      expect(parseRouteTail(bad), bad).to.equal(undefined);
    }
  });
});

describe('contract - message validation', () => {
  it('messages - a valid batch passes and survives a msgpack round trip', () => {
    const v = validateReportBatch(decode(encode(batch())));
    expect(v.ok).to.equal(true);
  });

  it('messages - utilization is optional: batches without it (older agents) and with it are valid, and the field is checked', () => {
    const old = batch();
    const withUtil = { ...batch(), utilization: [[0, 0.62]] };
    expect(validateReportBatch(decode(encode(old))).ok, 'without').to.equal(true);
    expect(validateReportBatch(decode(encode(withUtil))).ok, 'with').to.equal(true);
    expect(validateReportBatch({ ...batch(), utilization: [] }).ok, 'empty').to.equal(true);
    expect(validateReportBatch({ ...batch(), utilization: [[0, 0], [0, 1]] }).ok, 'the bounds, and a host twice').to.equal(true);
    const cases: Array<[unknown, string, RegExp]> = [
      [[[0, 1.01]], 'out_of_range', /^utilization\[0\]\[1\]: /],
      [[[0, -0.5]], 'out_of_range', /^utilization\[0\]\[1\]: /],
      [[[1, 0.5]], 'out_of_range', /^utilization\[0\]\[0\]: host index 1 is not below the 1 hosts/],
      [[[0]], 'wrong_type', /^utilization\[0\]/],
      [[[0, '0.5']], 'wrong_type', /^utilization\[0\]\[1\]/],
      [0.5, 'wrong_type', /^utilization: /],
    ];
    for (const [utilization, kind, detail] of cases) {
      const v = validateReportBatch({ ...batch(), utilization });
      expect(v.ok, JSON.stringify(utilization)).to.equal(false);
      if (!v.ok) {
        expect(v.kind, JSON.stringify(utilization)).to.equal(kind);
        expect(v.detail, JSON.stringify(utilization)).to.match(detail);
      }
    }
  });

  it('messages - each kind of bad batch is rejected with its kind', () => {
    const cases: Array<[Record<string, unknown>, string]> = [
      [{ v: 2 }, 'bad_version'],
      [{ sender: 5 }, 'wrong_type'],
      [{ sender: '' }, 'out_of_range'],
      [{ modid: -1 }, 'out_of_range'],
      [{ modid: 1.5 }, 'wrong_type'],
      [{ cmdid: 2 ** 32 }, 'out_of_range'],
      [{ ts: 'now' }, 'wrong_type'],
      [{ hosts: [] }, 'out_of_range'],
      [{ hosts: [['10.0.0.256', 80]] }, 'out_of_range'],
      [{ hosts: [['10.0.0.1', 0]] }, 'out_of_range'],
      [{ hosts: [['10.0.0.1']] }, 'wrong_type'],
      [{ reports: [[1, 0, 1, 0]] }, 'out_of_range'],
      [{ reports: [[0, 0, -1, 0]] }, 'out_of_range'],
      [{ reports: [[0, 0, LIMITS.maxLatencyMs + 1, 0]] }, 'out_of_range'],
      [{ reports: [[0, 0.5, 1, 0]] }, 'out_of_range'],
      [{ reports: [[0, 0, 1, 1.5]] }, 'out_of_range'],
      [{ reports: [[0, '0', 1, 0]] }, 'wrong_type'],
      [{ reports: [[0, 0, 1]] }, 'wrong_type'],
      [{ reports: Array.from({ length: LIMITS.maxBatchReports + 1 }, () => [0, 0, 1, 0]) }, 'oversize'],
      [{ zone: 7 }, 'wrong_type'],
    ];
    for (const [patch, kind] of cases) {
      const v = validateReportBatch({ ...batch(), ...patch });
      expect(v.ok, JSON.stringify(patch).slice(0, 80)).to.equal(false);
      if (!v.ok) expect(v.kind, JSON.stringify(patch).slice(0, 80)).to.equal(kind);
    }
    expect(validateReportBatch(null).ok).to.equal(false);
    expect(validateReportBatch([1, 2]).ok).to.equal(false);
  });

  it('messages - malformed msgpack is reported, not thrown', () => {
    expect(tryDecode(new Uint8Array([0xc1])).ok).to.equal(false);
    expect(tryDecode(new Uint8Array([0x85, 0xa1])).ok).to.equal(false);
  });

  it('messages - route state, registry entry and event validators', () => {
    const st = { v: 1, sender: 'n', modid: 1, cmdid: 1, version: 3, ts: 1, profile: 'default', panic: false, removed: false, probe_num: 10, hosts: [{ ip: '10.0.0.1', port: 80, weight: 100, state: 'healthy', reason: 'registered', since: 1, pick_weight: 100 }] };
    expect(validateRouteState(st).ok).to.equal(true);
    expect(validateRouteState({ ...st, version: 0 }).ok).to.equal(false);
    expect(validateRouteState({ ...st, hosts: [{ ...st.hosts[0], state: 'sick' }] }).ok).to.equal(false);
    const reg = { v: 1, modid: 1, cmdid: 1, hosts: [{ ip: '10.0.0.1', port: 80, weight: 1 }], updated_by: 'x', ts: 1 };
    expect(validateRegistryEntry(reg).ok).to.equal(true);
    expect(validateRegistryEntry({ ...reg, hosts: [reg.hosts[0], reg.hosts[0]] }).ok, 'duplicate host').to.equal(false);
    expect(validateRegistryEntry({ ...reg, profile: 'x' }).ok).to.equal(false);
    expect(validateRegistryEntry({ ...reg, params: { err_rate: 'a' } }).ok).to.equal(false);
    const ev = { v: 1, sender: 'n', modid: 1, cmdid: 1, ts: 1, ip: '10.0.0.1', port: 80, from: 'healthy', to: 'overloaded', reason: 'error_rate', version: 2, figures: { err_rate: 0.2 } };
    expect(validateRouteEvent(ev).ok).to.equal(true);
    expect(validateRouteEvent({ ...ev, to: 'gone' }).ok).to.equal(false);
    expect(validateRouteEvent({ ...ev, figures: { x: 'y' } }).ok).to.equal(false);
  });
});
