import { expect } from 'chai';
import { initialTransition } from 'xstate';
import { INITIAL_STATE, initialContext, hostMachine, restore, step, type HostEvent, type HostFields, type HostMachine } from '../../actors/host-machine.ts';
import { larsMachine } from '../../actors/profiles/lars.ts';
import type { HostState } from '../../schemas/messages.ts';

const T0 = 1_700_000_000_000;
const NOW = T0 + 60_000;

/** A host in `state` entered at T0 with 2 ejections so far. */
function host(state: HostState): HostFields {
  return { state, since: T0, reason: 'timeout', ejections: 2, ejectUntil: T0 + 10_000 };
}

const EVENTS: Record<HostEvent['type'], HostEvent> = {
  EJECT: { type: 'EJECT', reason: 'consecutive_errors', now: NOW, baseMs: 5_000, maxMs: 12_000 },
  RECOVER: { type: 'RECOVER', reason: 'probe_success', now: NOW },
  EJECTION_ELAPSED: { type: 'EJECTION_ELAPSED', now: NOW },
  DRAIN: { type: 'DRAIN', now: NOW },
  READD: { type: 'READD', now: NOW },
  DECAY: { type: 'DECAY', now: NOW },
  PROFILE_LARS: { type: 'PROFILE_LARS', reason: 'registered', now: NOW, ejectMs: 15_000 },
  RESTORE: { type: 'RESTORE', state: 'overloaded', since: T0 - 1_000, reason: 'error_rate', ejections: 3, ejectUntil: NOW + 7_000 },
};

const STATES: HostState[] = ['healthy', 'overloaded', 'probing', 'draining'];

/**
 * Where each event takes each state, per profile; `same` for a transition
 * that keeps the state but stamps the context, absent for an ignored event.
 */
type Table = Record<HostState, Partial<Record<HostEvent['type'], HostState | 'same'>>>;

// The fixture host's deadline (T0 + 10 s) is after its `since` (T0): a draining one was drained while out, and its
// ejection is over at NOW, so READD brings it back through probing (lars: healthy). The other cases are below.
const DEFAULT_TABLE: Table = {
  healthy: { EJECT: 'overloaded', DRAIN: 'draining', DECAY: 'same', RESTORE: 'overloaded' },
  overloaded: { EJECTION_ELAPSED: 'probing', DRAIN: 'draining' },
  probing: { RECOVER: 'healthy', EJECT: 'overloaded', DRAIN: 'draining' },
  draining: { READD: 'probing' },
};

const LARS_TABLE: Table = {
  healthy: { EJECT: 'overloaded', DRAIN: 'draining', DECAY: 'same', RESTORE: 'overloaded' },
  overloaded: { EJECTION_ELAPSED: 'healthy', RECOVER: 'healthy', DRAIN: 'draining' },
  probing: { RECOVER: 'healthy', EJECT: 'overloaded', DRAIN: 'draining', PROFILE_LARS: 'overloaded' },
  draining: { READD: 'healthy' },
};

function checkTable(name: string, machine: HostMachine, table: Table): void {
  for (const from of STATES) {
    for (const event of Object.values(EVENTS)) {
      const to = table[from][event.type];
      const title = to === undefined ? `${name} - ${event.type} in ${from} is ignored` : `${name} - ${event.type} takes ${from} to ${to === 'same' ? from : to}`;
      it(title, () => {
        const f = host(from);
        const before = { ...f };
        const changed = step(machine, f, event);
        if (to === undefined) {
          expect(changed).to.equal(false);
          expect(f).to.deep.equal(before);
        } else {
          expect(f.state).to.equal(to === 'same' ? from : to);
          expect(changed).to.equal(to !== 'same' && to !== from);
          expect(f).to.not.deep.equal(before, 'a transition stamps something');
        }
      });
    }
  }
}

describe('host machine - transitions, default profile', () => {
  checkTable('default', hostMachine, DEFAULT_TABLE);
});

describe('host machine - transitions, lars profile', () => {
  checkTable('lars', larsMachine, LARS_TABLE);
});

describe('host machine - what each transition stamps', () => {
  it('host machine - the initial state is healthy, registered, since the creation time (input)', () => {
    const [snap] = initialTransition(hostMachine, { now: T0 });
    expect(snap.value).to.equal(INITIAL_STATE);
    expect(snap.context).to.deep.equal({ since: T0, reason: 'registered', ejections: 0, ejectUntil: 0 });
    expect(initialContext({ now: T0 })).to.deep.equal(snap.context);
  });

  it('host machine - EJECT stamps reason, since, one more ejection and a deadline of n × base', () => {
    const f: HostFields = { state: 'healthy', since: T0, reason: 'registered', ejections: 0, ejectUntil: 0 };
    step(hostMachine, f, EVENTS.EJECT);
    expect(f).to.deep.equal({ state: 'overloaded', since: NOW, reason: 'consecutive_errors', ejections: 1, ejectUntil: NOW + 5_000 });
  });

  it('host machine - a repeated EJECT (probe failure) lasts longer, up to the cap', () => {
    const f = host('probing'); // 2 ejections so far
    step(hostMachine, f, { type: 'EJECT', reason: 'probe_failure', now: NOW, baseMs: 5_000, maxMs: 12_000 });
    expect(f).to.deep.equal({ state: 'overloaded', since: NOW, reason: 'probe_failure', ejections: 3, ejectUntil: NOW + 12_000 });
    const g = { ...host('probing'), ejections: 1 };
    step(hostMachine, g, { type: 'EJECT', reason: 'probe_failure', now: NOW, baseMs: 5_000, maxMs: 12_000 });
    expect(g.ejectUntil).to.equal(NOW + 10_000);
  });

  it('host machine - EJECTION_ELAPSED stamps timeout and since, keeps the ejection count (both profiles)', () => {
    for (const [m, to] of [
      [hostMachine, 'probing'],
      [larsMachine, 'healthy'],
    ] as const) {
      const f = host('overloaded');
      step(m, f, EVENTS.EJECTION_ELAPSED);
      expect(f).to.deep.equal({ state: to, since: NOW, reason: 'timeout', ejections: 2, ejectUntil: T0 + 10_000 });
    }
  });

  it('host machine - RECOVER stamps the event reason and since', () => {
    const f = host('probing');
    step(hostMachine, f, EVENTS.RECOVER);
    expect(f).to.deep.equal({ state: 'healthy', since: NOW, reason: 'probe_success', ejections: 2, ejectUntil: T0 + 10_000 });
    const g = host('overloaded');
    step(larsMachine, g, { type: 'RECOVER', reason: 'success_rate', now: NOW });
    expect(g).to.include({ state: 'healthy', since: NOW, reason: 'success_rate' });
  });

  it('host machine - DRAIN stamps removed, READD stamps readded', () => {
    const f = host('healthy');
    step(hostMachine, f, EVENTS.DRAIN);
    expect(f).to.include({ state: 'draining', since: NOW, reason: 'removed', ejections: 2 });
    step(hostMachine, f, { type: 'READD', now: NOW + 1 });
    expect(f).to.include({ state: 'healthy', since: NOW + 1, reason: 'readded', ejections: 2 });
  });

  it('host machine - a host drained while its ejection runs comes back overloaded until the ejection ends (default profile)', () => {
    const f: HostFields = { state: 'healthy', since: T0, reason: 'registered', ejections: 0, ejectUntil: 0 };
    step(hostMachine, f, { type: 'EJECT', reason: 'consecutive_errors', now: T0, baseMs: 30_000, maxMs: 300_000 });
    step(hostMachine, f, { type: 'DRAIN', now: T0 + 1_000, reason: 'admin_drain' });
    expect(f).to.include({ state: 'draining', ejectUntil: T0 + 30_000 });
    step(hostMachine, f, { type: 'READD', now: T0 + 10_000, reason: 'admin_undrain' });
    expect(f).to.deep.equal({ state: 'overloaded', since: T0 + 10_000, reason: 'admin_undrain', ejections: 1, ejectUntil: T0 + 30_000 });
    // the rest of the ejection as any: then probing
    step(hostMachine, f, { type: 'EJECTION_ELAPSED', now: T0 + 30_000 });
    expect(f).to.include({ state: 'probing', reason: 'timeout' });
  });

  it('host machine - a host drained while out whose ejection ended meanwhile comes back probing (lars: healthy)', () => {
    for (const [m, to] of [
      [hostMachine, 'probing'],
      [larsMachine, 'healthy'],
    ] as const) {
      const f: HostFields = { state: 'healthy', since: T0, reason: 'registered', ejections: 0, ejectUntil: 0 };
      step(m, f, { type: 'EJECT', reason: 'consecutive_errors', now: T0, baseMs: 30_000, maxMs: 300_000 });
      step(m, f, { type: 'DRAIN', now: T0 + 1_000 });
      step(m, f, { type: 'READD', now: T0 + 60_000 });
      expect(f).to.include({ state: to, since: T0 + 60_000, reason: 'readded', ejections: 1 });
    }
  });

  it('host machine - a host drained while probing comes back probing', () => {
    const f = host('probing');
    step(hostMachine, f, { type: 'DRAIN', now: NOW, reason: 'admin_drain' });
    step(hostMachine, f, { type: 'READD', now: NOW + 1, reason: 'admin_undrain' });
    expect(f).to.include({ state: 'probing', since: NOW + 1, reason: 'admin_undrain' });
  });

  it('host machine - a host drained while healthy comes back healthy, even right after recovering (both profiles)', () => {
    // lars recovers before its deadline (success rate): the deadline is cut to the recovery
    const g: HostFields = { state: 'healthy', since: T0, reason: 'registered', ejections: 0, ejectUntil: 0 };
    step(larsMachine, g, { type: 'EJECT', reason: 'error_rate', now: T0, baseMs: 30_000, maxMs: 300_000 });
    step(larsMachine, g, { type: 'RECOVER', reason: 'success_rate', now: T0 + 5_000 });
    expect(g).to.include({ state: 'healthy', ejectUntil: T0 + 5_000 });
    step(larsMachine, g, { type: 'DRAIN', now: T0 + 5_000 });
    step(larsMachine, g, { type: 'READD', now: T0 + 6_000 });
    expect(g.state).to.equal('healthy');
    // default: probed back, drained at the very moment of recovery
    const f = host('probing');
    step(hostMachine, f, { type: 'RECOVER', reason: 'probe_success', now: NOW });
    step(hostMachine, f, { type: 'DRAIN', now: NOW });
    step(hostMachine, f, { type: 'READD', now: NOW + 1 });
    expect(f.state).to.equal('healthy');
  });

  it("host machine - an operator's ejection cleared (far deadline) then drained comes back probing, not ejected for a century", () => {
    const f: HostFields = { state: 'healthy', since: T0, reason: 'registered', ejections: 0, ejectUntil: 0 };
    const century = 100 * 365 * 24 * 3600 * 1000;
    step(hostMachine, f, { type: 'EJECT', reason: 'admin_eject', now: T0, baseMs: century, maxMs: century });
    step(hostMachine, f, { type: 'EJECTION_ELAPSED', now: T0 + 1_000, reason: 'admin_clear' });
    expect(f).to.include({ state: 'probing', ejectUntil: T0 + 1_000 });
    step(hostMachine, f, { type: 'DRAIN', now: T0 + 1_000, reason: 'admin_drain' });
    step(hostMachine, f, { type: 'READD', now: T0 + 2_000, reason: 'admin_undrain' });
    expect(f.state).to.equal('probing');
  });

  it('host machine - DECAY forgives one ejection and nothing else; at zero it is ignored', () => {
    const f = host('healthy');
    expect(step(hostMachine, f, EVENTS.DECAY)).to.equal(false);
    expect(f).to.deep.equal({ ...host('healthy'), ejections: 1 });
    step(hostMachine, f, EVENTS.DECAY);
    step(hostMachine, f, EVENTS.DECAY);
    expect(f.ejections).to.equal(0);
  });

  it('host machine - PROFILE_LARS (lars only) stamps its reason, since and a fresh deadline; the count stays', () => {
    const f = host('probing');
    expect(step(larsMachine, f, EVENTS.PROFILE_LARS)).to.equal(true);
    expect(f).to.deep.equal({ state: 'overloaded', since: NOW, reason: 'registered', ejections: 2, ejectUntil: NOW + 15_000 });
  });

  it('host machine - RESTORE takes the recorded state and context as they are', () => {
    for (const state of STATES) {
      const f: HostFields = { state: 'healthy', since: NOW, reason: 'registered', ejections: 0, ejectUntil: 0 };
      step(hostMachine, f, { type: 'RESTORE', state, since: T0, reason: 'latency_outlier', ejections: 4, ejectUntil: NOW + 3_000 });
      expect(f).to.deep.equal({ state, since: T0, reason: 'latency_outlier', ejections: 4, ejectUntil: NOW + 3_000 });
    }
  });

  it('host machine - lars restores a probing host as overloaded (it has no probing state)', () => {
    const f: HostFields = { state: 'healthy', since: NOW, reason: 'registered', ejections: 0, ejectUntil: 0 };
    step(larsMachine, f, { type: 'RESTORE', state: 'probing', since: T0, reason: 'timeout', ejections: 1, ejectUntil: NOW + 3_000 });
    expect(f).to.deep.equal({ state: 'overloaded', since: T0, reason: 'timeout', ejections: 1, ejectUntil: NOW + 3_000 });
  });

  it('host machine - RESTORE is legal only in the state a host is created in', () => {
    for (const state of ['overloaded', 'probing', 'draining'] as const) {
      const f = host(state);
      step(hostMachine, f, { ...EVENTS.RESTORE, state: 'healthy' } as HostEvent);
      expect(f).to.deep.equal(host(state));
    }
  });
});

describe('host machine - restore', () => {
  it('machine - restore gives what a RESTORE step gives, for every recorded state and both profiles, and keeps the recorded context', () => {
    const states: HostState[] = ['healthy', 'overloaded', 'probing', 'draining'];
    for (const [name, m] of [['default', hostMachine], ['lars', larsMachine]] as Array<[string, HostMachine]>) {
      for (const st of states) {
        const e = { type: 'RESTORE', state: st, since: 123, reason: 'timeout', ejections: 2, ejectUntil: 456 } as const;
        const a: HostFields = { state: INITIAL_STATE, ...initialContext({ now: 1 }) };
        const b: HostFields = { state: INITIAL_STATE, ...initialContext({ now: 1 }) };
        const ca = step(m, a, e);
        const cb = restore(m, b, e);
        expect(b, `${name} ${st}`).to.deep.equal(a);
        expect(cb).to.equal(ca);
        // asked again (from the kept answer), the same
        const c: HostFields = { state: INITIAL_STATE, ...initialContext({ now: 1 }) };
        restore(m, c, e);
        expect(c).to.deep.equal(a);
      }
    }
    // lars has no probing: a recorded probing host comes back overloaded
    const l: HostFields = { state: INITIAL_STATE, ...initialContext({ now: 1 }) };
    restore(larsMachine, l, { type: 'RESTORE', state: 'probing', since: 5, reason: 'timeout', ejections: 1, ejectUntil: 9 });
    expect(l.state).to.equal('overloaded');
  });
});
