import { expect } from 'chai';
import { RouteActor, parseCheckpoint, type RouteChanges, type RouteCheckpoint } from '../../actors/route.ts';
import type { Profile, RegistryEntry } from '../../schemas/messages.ts';

const T0 = 1_700_000_000_000;

function entry(n: number, profile: Profile, params: Record<string, number> = {}): RegistryEntry {
  return {
    v: 1,
    modid: 1,
    cmdid: 2,
    profile,
    params,
    hosts: Array.from({ length: n }, (_, i) => ({ ip: `10.0.0.${i + 1}`, port: 8000, weight: 100, zone: i % 2 === 0 ? 'a' : 'b' })),
    updated_by: 'test',
    ts: 0,
  };
}

const key = (i: number): string => `10.0.0.${i}:8000`;

/** A flush without the node-specific sender, for comparing two nodes' output. */
function comparable(c: RouteChanges | undefined): unknown {
  if (!c) return undefined;
  const withoutSender = <T extends { sender: string }>(x: T): Omit<T, 'sender'> & { sender?: string } => {
    const copy: Omit<T, 'sender'> & { sender?: string } = { ...x };
    delete copy.sender;
    return copy;
  };
  return { state: withoutSender(c.state), events: c.events.map(withoutSender) };
}

/** Deterministic call results: a few hosts fail often, one is slow. */
function lcg(seed: number): () => number {
  let x = seed;
  return () => {
    x = (Math.imul(x, 1103515245) + 12345) >>> 0;
    return x / 2 ** 32;
  };
}

/** Runs both actors through the same reports and ticks; every flush must match. */
function runTwins(a: RouteActor, b: RouteActor, hosts: number, start: number, ms: number, seed: number): number {
  const rnd = lcg(seed);
  let flushes = 0;
  for (let t = start; t < start + ms; t += 50) {
    for (let k = 0; k < 20; k++) {
      const h = 1 + Math.floor(rnd() * hosts);
      const failing = h <= 2 && t < start + ms / 2;
      const retcode = rnd() < (failing ? 0.6 : 0.02) ? 1 : 0;
      const latency = h === hosts ? 80 + rnd() * 20 : 8 + rnd() * 4;
      a.report(key(h), retcode, latency, t);
      b.report(key(h), retcode, latency, t);
    }
    if (t % 250 === 0) {
      a.tick(t);
      b.tick(t);
    }
    const fa = a.flush(t);
    const fb = b.flush(t);
    expect(comparable(fb), `flush at +${t - start} ms`).to.deep.equal(comparable(fa));
    if (fa) flushes++;
  }
  return flushes;
}

/** Ejections of the mixed route, s: short enough that two of them end within one idle_timeout window. */
const MIXED = { base_ejection_time: 5 };

/** A default route with host 1 overloaded after 2 ejections, host 2 probing with one probe error, the rest healthy mid-window. */
function mixedRoute(): { r: RouteActor; now: number } {
  let now = T0;
  const r = new RouteActor({ modid: 1, cmdid: 2, nodeId: 'n1', entry: entry(6, 'default', MIXED), now });
  r.flush(now);
  for (let i = 0; i < 15; i++) r.report(key(1), 1, 10, now);
  now += MIXED.base_ejection_time * 1000;
  r.tick(now);
  r.report(key(1), 1, 10, now);
  r.report(key(1), 1, 10, now);
  for (let i = 0; i < 15; i++) r.report(key(2), 1, 10, now);
  r.flush(now);
  now += MIXED.base_ejection_time * 1000;
  for (let h = 3; h <= 6; h++) for (let i = 0; i < 25; i++) r.report(key(h), i % 8 === 0 ? 1 : 0, 10 + h, now);
  r.tick(now);
  r.report(key(2), 1, 10, now);
  r.report(key(2), 0, 10, now);
  return { r, now };
}

describe('checkpoint - exact restore of a route actor', () => {
  it('checkpoint - a mixed route resumes exactly on another node and produces the same flushes', () => {
    const { r, now } = mixedRoute();
    const h1 = r.host(key(1))!;
    const h2 = r.host(key(2))!;
    const h3 = r.host(key(3))!;
    expect(h1).to.include({ state: 'overloaded', ejections: 2 });
    expect(h2).to.include({ state: 'probing', probeErr: 1, continSucc: 1 });
    expect(h3).to.include({ state: 'healthy', windowStart: T0, rsucc: 21, rerr: 4 });
    expect(r.peerLatency).to.be.greaterThan(0);
    expect(r.isDirty, 'unpublished changes travel too').to.equal(true);

    const cp = JSON.parse(JSON.stringify(r.checkpoint(now))) as unknown;
    const parsed = parseCheckpoint(cp);
    expect(parsed.ok).to.equal(true);
    if (!parsed.ok) return;
    // the published state is there too, but the checkpoint wins
    const stale = r.snapshot(now);
    stale.hosts = stale.hosts.map((h) => ({ ...h, state: 'healthy' }));
    const r2 = new RouteActor({ modid: 1, cmdid: 2, nodeId: 'n2', entry: entry(6, 'default', MIXED), now, checkpoint: parsed.value, restored: stale });
    expect(r2.checkpoint(now)).to.deep.equal(r.checkpoint(now));
    expect(r2.host(key(1))).to.include({ state: 'overloaded', ejections: 2, ejectUntil: h1.ejectUntil, verr: h1.verr });

    const flushes = runTwins(r, r2, 6, now, 60_000, 7);
    expect(flushes, 'the run changes states').to.be.greaterThan(3);
    expect(r2.checkpoint(now + 60_000)).to.deep.equal(r.checkpoint(now + 60_000));
  });

  it('checkpoint - a lars route resumes with its counters', () => {
    let now = T0;
    const r = new RouteActor({ modid: 1, cmdid: 2, nodeId: 'n1', entry: entry(4, 'lars'), now });
    for (let i = 0; i < 15; i++) r.report(key(1), 1, 5, now);
    for (let i = 0; i < 3; i++) r.report(key(1), 0, 5, now);
    for (let i = 0; i < 9; i++) r.report(key(2), 1, 5, now);
    r.flush(now);
    now += 4_000;
    const r2 = new RouteActor({ modid: 1, cmdid: 2, nodeId: 'n2', entry: entry(4, 'lars'), now, checkpoint: r.checkpoint(now) });
    expect(r2.flush(now), 'nothing unpublished').to.equal(undefined);
    expect(r2.host(key(1))).to.include({ state: 'overloaded', vsucc: 3, verr: 5, continSucc: 3 });
    expect(r2.host(key(2))).to.include({ state: 'healthy', verr: 9, continErr: 9 });
    expect(runTwins(r, r2, 4, now, 40_000, 11)).to.be.greaterThan(1);
  });

  it('checkpoint - a registry entry that changed since the checkpoint is applied on top', () => {
    const { r, now } = mixedRoute();
    r.flush(now);
    const e = entry(6, 'default', MIXED);
    e.hosts = e.hosts.filter((h) => h.ip !== '10.0.0.3');
    const r2 = new RouteActor({ modid: 1, cmdid: 2, nodeId: 'n2', entry: e, now, checkpoint: r.checkpoint(now) });
    expect(r2.host(key(3))!.state).to.equal('draining');
    expect(r2.host(key(1))).to.include({ state: 'overloaded', ejections: 2 });
    const c = r2.flush(now)!;
    expect(c.state.version).to.equal(r.currentVersion + 1);
    expect(c.events.map((x) => `${x.ip}:${x.from}>${x.to}`)).to.deep.equal(['10.0.0.3:healthy>draining']);
  });

  it('checkpoint - a switch to lars after the checkpoint moves its probing host to overloaded', () => {
    const { r, now } = mixedRoute();
    const r2 = new RouteActor({ modid: 1, cmdid: 2, nodeId: 'n2', entry: entry(6, 'lars'), now, checkpoint: r.checkpoint(now) });
    expect(r2.host(key(2))).to.include({ state: 'overloaded', reason: 'profile_changed', since: now });
    expect(r2.flush(now)!.events.at(-1)).to.include({ ip: '10.0.0.2', from: 'probing', to: 'overloaded' });
  });

  it('checkpoint - one for another route is ignored: the published state is the fallback', () => {
    const { r, now } = mixedRoute();
    const cp: RouteCheckpoint = { ...r.checkpoint(now), cmdid: 99 };
    const last = r.flush(now)!.state;
    const r2 = new RouteActor({ modid: 1, cmdid: 2, nodeId: 'n2', entry: entry(6, 'default', MIXED), now, checkpoint: cp, restored: last });
    expect(r2.host(key(2))).to.include({ state: 'probing', probeErr: 0, ejections: 1 });
    expect(r2.currentVersion).to.equal(last.version);
  });

  it('checkpoint - parseCheckpoint rejects malformed input with a reason', () => {
    const { r, now } = mixedRoute();
    const good = JSON.parse(JSON.stringify(r.checkpoint(now))) as Record<string, unknown>;
    expect(parseCheckpoint(good).ok).to.equal(true);
    const bad: Array<[unknown, string]> = [
      [null, 'not an object'],
      [{ ...good, v: 2 }, 'v must be 1'],
      [{ ...good, version: 'x' }, 'version must be a number'],
      [{ ...good, profile: 'nginx' }, 'unknown profile'],
      [{ ...good, params: { err_rate: 'high' } }, 'params must map names to numbers'],
      [{ ...good, hosts: [{ ...(good['hosts'] as object[])[0], state: 'zombie' }] }, 'hosts[0].state is unknown'],
      [{ ...good, hosts: [{ ...(good['hosts'] as object[])[0], vsucc: null }] }, 'hosts[0].vsucc must be a number'],
      [{ ...good, pending: [{}] }, 'pending[0] is not a route event'],
    ];
    for (const [x, error] of bad) expect(parseCheckpoint(x)).to.deep.equal({ ok: false, error });
  });
});
