import { expect } from 'chai';
import { stateVerdict, versionsStartedAgain } from '../../actors/route-versions.ts';

describe('route versions (actors/route-versions.ts)', () => {
  const held = { version: 5, ts: 1000 };

  it('route-versions - a newer version applies, an equal or older one is stale, an older one published later asks for the store', () => {
    expect(stateVerdict(undefined, { version: 1, ts: 0 }, false)).to.equal('apply');
    expect(stateVerdict(held, { version: 6, ts: 900 }, false)).to.equal('apply');
    expect(stateVerdict(held, { version: 5, ts: 1001 }, false)).to.equal('stale');
    expect(stateVerdict(held, { version: 4, ts: 999 }, false)).to.equal('stale');
    expect(stateVerdict(held, { version: 4, ts: 1001 }, false)).to.equal('stale_check_store');
    expect(stateVerdict(held, { version: 1, ts: 0 }, true), 'versions started again').to.equal('apply');
  });

  it('route-versions - the versions started again when the store lost a live state or holds an older one published later, once', () => {
    expect(versionsStartedAgain(held, undefined, false)).to.equal(true);
    expect(versionsStartedAgain(held, { version: 1, ts: 2000 }, false)).to.equal(true);
    expect(versionsStartedAgain(held, { version: 4, ts: 999 }, false), 'a lagging replica').to.equal(false);
    expect(versionsStartedAgain(held, { version: 5, ts: 1000 }, false)).to.equal(false);
    expect(versionsStartedAgain(held, undefined, true), 'said once').to.equal(false);
    expect(versionsStartedAgain({ ...held, removed: true }, undefined, false), 'a removed route').to.equal(false);
    expect(versionsStartedAgain(undefined, undefined, false), 'nothing held').to.equal(false);
  });
});
