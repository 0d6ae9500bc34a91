import { expect } from 'chai';
import { isLive, liveHosts, mergeEntry, nextExpiry, SELF_REGISTERED_BY, type HeardHost } from '../../actors/self-registration.ts';
import type { RegistryEntry, SelfRegistration } from '../../schemas/messages.ts';
import { validateSelfRegistration } from '../../schemas/messages.ts';
import { registerSelf } from '../../src/agent/self-register.ts';

function heard(ip: string, port: number, heardAt: number, o: Partial<SelfRegistration> = {}): HeardHost {
  return { rec: { v: 1, modid: 1, cmdid: 2, ip, port, weight: 100, state: 'up', instance: 'i', ttl_ms: 1000, ts: 0, ...o }, heardAt };
}

const admin: RegistryEntry = { v: 1, modid: 1, cmdid: 2, profile: 'lars', hosts: [{ ip: '10.0.0.1', port: 80, weight: 30 }], updated_by: 'ops', ts: 5 };

describe('self-registration - merge rules', () => {
  it('selfreg - a host is live while up and heard from within its TTL, not a millisecond more', () => {
    const h = heard('10.0.0.2', 80, 1000);
    expect(isLive(h, 2000)).to.equal(true);
    expect(isLive(h, 2001)).to.equal(false);
    expect(isLive(heard('10.0.0.2', 80, 1000, { state: 'draining' }), 1000)).to.equal(false);
    expect(nextExpiry([h, heard('10.0.0.3', 80, 500)], 1000)).to.equal(1501);
    expect(nextExpiry([heard('10.0.0.3', 80, 500, { state: 'draining' })], 1000)).to.equal(Infinity);
  });

  it('selfreg - live hosts join the admin entry after its own, sorted; the admin one wins for the same host', () => {
    const self = liveHosts([heard('10.0.0.9', 80, 0, { zone: 'z' }), heard('10.0.0.1', 80, 0, { weight: 500 }), heard('10.0.0.5', 80, 0), heard('10.0.0.7', 80, 0, { state: 'draining' })], 10);
    expect(self.map((h) => h.ip)).to.deep.equal(['10.0.0.1', '10.0.0.5', '10.0.0.9']);
    const m = mergeEntry(admin, self, 1, 2, 99)!;
    expect(m.hosts).to.deep.equal([
      { ip: '10.0.0.1', port: 80, weight: 30 },
      { ip: '10.0.0.5', port: 80, weight: 100 },
      { ip: '10.0.0.9', port: 80, weight: 100, zone: 'z' },
    ]);
    expect(m.profile).to.equal('lars');
    expect(m.updated_by).to.equal('ops');
  });

  it('selfreg - without an admin entry a route exists while it has a live self-registered host', () => {
    expect(mergeEntry(undefined, [], 1, 2, 7)).to.equal(undefined);
    expect(mergeEntry(admin, [], 1, 2, 7)).to.equal(admin);
    const m = mergeEntry(undefined, liveHosts([heard('10.0.0.5', 80, 0)], 0), 1, 2, 7)!;
    expect(m).to.deep.equal({ v: 1, modid: 1, cmdid: 2, hosts: [{ ip: '10.0.0.5', port: 80, weight: 100 }], updated_by: SELF_REGISTERED_BY, ts: 7 });
  });

  it('selfreg - the contract refuses a registration with a TTL out of range, an unknown state or a bad address', () => {
    const ok = heard('10.0.0.5', 80, 0).rec;
    expect(validateSelfRegistration(ok).ok).to.equal(true);
    expect(validateSelfRegistration({ ...ok, ttl_ms: 999 }).ok).to.equal(false);
    expect(validateSelfRegistration({ ...ok, ttl_ms: 600_001 }).ok).to.equal(false);
    expect(validateSelfRegistration({ ...ok, state: 'gone' }).ok).to.equal(false);
    expect(validateSelfRegistration({ ...ok, ip: '10.0.0.256' }).ok).to.equal(false);
    expect(validateSelfRegistration({ ...ok, instance: '' }).ok).to.equal(false);
  });

  it('selfreg - registerSelf refuses what the contract refuses, before it connects anywhere', async () => {
    const bad = [
      { modid: 1, cmdid: 1, ip: '10.0.0.256', port: 80 },
      { modid: 1, cmdid: 1, ip: '10.0.0.1', port: 0 },
      { modid: -1, cmdid: 1, ip: '10.0.0.1', port: 80 },
      { modid: 1, cmdid: 1, ip: '10.0.0.1', port: 80, ttlMs: 999 },
      { modid: 1, cmdid: 1, ip: '10.0.0.1', port: 80, weight: 0 },
      { modid: 1, cmdid: 1, ip: '10.0.0.1', port: 80, ttlMs: 2000, heartbeatMs: 2000 },
    ];
    for (const o of bad) {
      // no server answers on this address: a check that let the input through would fail to connect instead
      const err = await registerSelf({ ...o, servers: 'nats://127.0.0.1:1' }).then(() => undefined, (e: unknown) => e);
      expect(err, JSON.stringify(o)).to.be.instanceOf(RangeError);
    }
  });
});
