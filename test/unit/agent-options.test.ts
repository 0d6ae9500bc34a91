import { expect } from 'chai';
import { AGENT_DEFAULTS, ReportDelivery, resolveAgentOptions } from '../../src/agent/options.ts';
import { DEFAULT_PARTITIONS } from '../../schemas/subjects.ts';

describe('agent options - resolved in one place', () => {
  it('agent options - every default filled in', () => {
    const o = resolveAgentOptions({});
    expect(o.agentId).to.match(/^agent-[0-9a-f]{12}$/);
    expect(o).to.deep.include({
      prefix: undefined,
      partitions: DEFAULT_PARTITIONS,
      zone: undefined,
      pickZone: undefined,
      zoneMinHealthyPercent: 70,
      strategy: undefined,
      feedback: { timeoutMs: 1000, decayMs: 10_000 },
      probeTrials: 1,
      batchMaxReports: 1000,
      batchMaxDelayMs: 20,
      loadTimeoutMs: 2000,
      holdEmptyUpdates: true,
      maxPendingReports: 100_000,
      reportDelivery: ReportDelivery.acked,
      publishWindow: 64,
      ackTimeoutMs: 5000,
      retryIntervalMs: 250,
      retryBackoffMs: [500, 1000, 2000, 5000],
      confirmDelayMs: 5000,
      flushTimeoutMs: 30_000,
      closeTimeoutMs: 5000,
    });
    expect(o.random).to.equal(Math.random);
    expect(o.clock).to.equal(Date.now);
    // a copy: the defaults cannot be changed through an agent's options
    expect(o.retryBackoffMs).to.not.equal(AGENT_DEFAULTS.retryBackoffMs);
  });

  it('agent options - given values kept; picks prefer the zone unless zoneAware is false; probeTrials and maxPendingReports at least 1', () => {
    const o = resolveAgentOptions({ agentId: 'a1', zone: 'z1', timeoutMs: 300, probeTrials: 2.7, maxPendingReports: 0, reportDelivery: 'core' });
    expect([o.agentId, o.zone, o.pickZone, o.feedback.timeoutMs, o.probeTrials, o.maxPendingReports, o.reportDelivery]).to.deep.equal(['a1', 'z1', 'z1', 300, 2, 1, 'core']);
    const n = resolveAgentOptions({ zone: 'z1', zoneAware: false, probeTrials: 0 });
    expect([n.zone, n.pickZone, n.probeTrials]).to.deep.equal(['z1', undefined, 1]);
  });

  it('agent options - a timeout that is not positive, or a zone share outside 0-100, is a RangeError naming it', () => {
    expect(() => resolveAgentOptions({ timeoutMs: 0 })).to.throw(RangeError, 'timeoutMs must be positive, got 0');
    expect(() => resolveAgentOptions({ timeoutMs: Number.NaN })).to.throw(RangeError, 'timeoutMs');
    expect(() => resolveAgentOptions({ zoneMinHealthyPercent: 101 })).to.throw(RangeError, 'zoneMinHealthyPercent must be within 0-100, got 101');
    expect(() => resolveAgentOptions({ zoneMinHealthyPercent: -1 })).to.throw(RangeError, 'zoneMinHealthyPercent');
  });
});
