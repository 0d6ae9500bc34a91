import { expect } from 'chai';
import { chooseReplicas, setProcessReplicas } from '../../src/nats/streams.ts';
import { loadConfig, replicasOf } from '../../src/lib/config.ts';

describe('replicas from the config', () => {
  afterEach(() => setProcessReplicas('auto'));

  it('replicas - a configured count overrides auto for every stream and bucket of the process', () => {
    const cfg = loadConfig({ flags: { replicas: '3' }, env: {} });
    setProcessReplicas(replicasOf(cfg));
    expect(chooseReplicas('auto', {})).to.equal(3);
    expect(chooseReplicas(undefined, {})).to.equal(3);
    expect(chooseReplicas(1, {})).to.equal(1);
  });

  it('replicas - auto stays automatic: 3 on a cluster, 1 on one server', () => {
    setProcessReplicas(replicasOf(loadConfig({ env: {} })));
    expect(chooseReplicas('auto', { cluster: 'c1' })).to.equal(3);
    expect(chooseReplicas('auto', {})).to.equal(1);
  });

  it('replicas - a bad count is a config error', () => {
    expect(() => loadConfig({ flags: { replicas: '7' }, env: {} })).to.throw(/replicas must be auto or a count from 1 to 5/);
    expect(() => loadConfig({ flags: { replicas: 'three' }, env: {} })).to.throw(/replicas/);
  });
});
