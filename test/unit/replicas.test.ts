import { expect } from 'chai';
import { CLUSTER_REPLICAS, chooseReplicas, streamConfig, DEFAULT_REPORT_STREAM_LIMITS } from '../../src/nats/streams.ts';
import { ConfigError } from '../../src/lib/errors.ts';

describe('replicas', () => {
  it('replicas - auto is 3 when the server names a cluster, 1 on a single server', () => {
    expect(chooseReplicas('auto', { cluster: 'east' })).to.equal(CLUSTER_REPLICAS);
    expect(CLUSTER_REPLICAS).to.equal(3);
    expect(chooseReplicas('auto', { cluster: undefined })).to.equal(1);
    expect(chooseReplicas('auto', {})).to.equal(1);
    expect(chooseReplicas(undefined, { cluster: 'east' })).to.equal(3);
    expect(chooseReplicas(undefined, undefined)).to.equal(1);
  });

  it('replicas - a number is taken as it is, on a cluster or not', () => {
    expect(chooseReplicas(1, { cluster: 'east' })).to.equal(1);
    expect(chooseReplicas(5, {})).to.equal(5);
  });

  it('replicas - counts outside 1..5 or not whole are a config error', () => {
    for (const bad of [0, -1, 6, 2.5, Number.NaN]) expect(() => chooseReplicas(bad, {}), String(bad)).to.throw(ConfigError);
  });

  it('replicas - the stream config carries the resolved count', () => {
    expect(streamConfig('S', 's.>', { ...DEFAULT_REPORT_STREAM_LIMITS, replicas: 3 }).num_replicas).to.equal(3);
    expect(DEFAULT_REPORT_STREAM_LIMITS.replicas).to.equal('auto');
  });
});
