import { expect } from 'chai';
import { StoreSync, parseNatsVersion, storeSyncFromEnv, storeSyncPlan, supportsSyncInterval } from '../../src/nats/natsd.ts';

describe('natsd store sync', () => {
  it('natsd - versions parse from the --version line; sync_interval is 2.10 and later', () => {
    expect(parseNatsVersion('nats-server: v2.9.10\n')).to.deep.equal([2, 9, 10]);
    expect(parseNatsVersion('nats-server: v2.10.23')).to.deep.equal([2, 10, 23]);
    expect(parseNatsVersion('garbage')).to.equal(undefined);
    expect(supportsSyncInterval([2, 9, 25])).to.equal(false);
    expect(supportsSyncInterval([2, 10, 0])).to.equal(true);
    expect(supportsSyncInterval([3, 0, 0])).to.equal(true);
    expect(supportsSyncInterval(undefined)).to.equal(false);
  });

  it('natsd - by default, always where the server has sync_interval (a config file), the server default on 2.9', () => {
    const native = storeSyncPlan(undefined, [2, 10, 29], false);
    expect(native).to.include({ sync: StoreSync.always, how: 'sync_interval' });
    expect(native.config).to.match(/jetstream \{\s*sync_interval: always\s*\}/);
    expect(storeSyncPlan(undefined, [2, 9, 10], false)).to.deep.equal({ sync: StoreSync.interval, how: 'none' });
  });

  it('natsd - always on 2.9 sets the store directory synchronous; a caller config on 2.10 decides for itself; interval changes nothing', () => {
    expect(storeSyncPlan(StoreSync.always, [2, 9, 10], false)).to.deep.equal({ sync: StoreSync.always, how: 'chattr' });
    // 2.9 has no setting to put in a config: the attribute applies whatever the caller's config says
    expect(storeSyncPlan(StoreSync.always, [2, 9, 10], true)).to.deep.equal({ sync: StoreSync.always, how: 'chattr' });
    expect(storeSyncPlan(StoreSync.always, [2, 11, 0], true)).to.deep.equal({ sync: StoreSync.always, how: 'caller_config' });
    expect(storeSyncPlan(StoreSync.interval, [2, 11, 0], false)).to.deep.equal({ sync: StoreSync.interval, how: 'none' });
  });

  it('natsd - LARS_NATS_SYNC takes always or interval; anything else is a config error', () => {
    expect(storeSyncFromEnv(undefined)).to.equal(undefined);
    expect(storeSyncFromEnv('')).to.equal(undefined);
    expect(storeSyncFromEnv('always')).to.equal(StoreSync.always);
    expect(storeSyncFromEnv('interval')).to.equal(StoreSync.interval);
    expect(() => storeSyncFromEnv('fsync')).to.throw(/LARS_NATS_SYNC must be 'always' or 'interval'/);
  });
});
