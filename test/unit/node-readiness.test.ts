/** A route node's /readyz answer from its ownership's view (pure: no servers). */
import { expect } from 'chai';
import { nodeReadiness } from '../../src/node/metrics.ts';
import type { OwnershipHealth } from '../../src/cluster/ownership.ts';

const connected = { connected: () => true, reconnects: () => 0, stop: () => undefined };

function ready(h: OwnershipHealth, served: number) {
  return nodeReadiness(connected, { started: () => true, health: () => h, served: () => served })();
}

const base: OwnershipHealth = { leaseMs: 2000, desired: 0, held: 0, unowned: [], mineUnowned: 0 };

describe('node readiness', () => {
  it('readiness - a node doing its share is ready; one that should own partitions and owns none is not', () => {
    expect(ready({ ...base, desired: 3, held: 3 }, 3)).to.deep.equal({ ready: true });
    expect(ready({ ...base, desired: 3 }, 0)).to.deep.equal({ ready: false, reason: 'should own 3 partitions and owns none' });
  });

  it('readiness - a node leaving the cluster is not ready, even with nothing of its own left and partitions unowned', () => {
    expect(ready({ ...base, unowned: [{ partition: 0, forMs: 3_900 }], leaving: true }, 0)).to.deep.equal({ ready: false, reason: 'leaving the cluster: handing its partitions over' });
    // The same view without the stop: nothing this node should own, so it is ready.
    expect(ready({ ...base, unowned: [{ partition: 0, forMs: 3_900 }] }, 0)).to.deep.equal({ ready: true });
  });
});
