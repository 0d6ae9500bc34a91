/**
 * The host machine: the state of one host of a route (xstate v5).
 *
 * States: healthy (Lars "idle"), overloaded (ejected), probing (half-open,
 * trial traffic), draining (removed from the registry, or drained by an
 * operator). The machine holds the legal transitions and what each one
 * stamps (reason, since, ejection count and deadline); every change of a
 * host's state or of these fields goes through it.
 *
 * A host drained while it was out (overloaded or probing) comes back out:
 * re-added or undrained, it is overloaded until its ejection ends if that is
 * still ahead, else probing (lars: healthy, as when an ejection elapses).
 * Draining does not forgive a sick host. The deadline records it: it is
 * after `since` only while an ejection runs (leaving `overloaded` cuts it to
 * that moment), and a drain from overloaded or probing keeps it at or after
 * the drain's `since`, a drain from healthy before it. The per-report arithmetic that decides *when* to send an event
 * lives in the route's profile policy (actors/profiles/) as plain fields: a
 * report is not an xstate event.
 *
 * The profiles differ by one guard, `probesBeforeRecovery`, supplied with
 * `machine.provide()`: the default profile recovers through probing, the
 * lars profile goes straight back to healthy and has no probing state.
 *
 * Hosts do not run as started actors. A route keeps each host's state value
 * and context in plain fields and computes the next state with xstate's pure
 * `transition()` only when an event can change it (see docs/state-machine.md
 * for the memory figures behind this choice).
 */
import { setup, assign, and, not, transition } from 'xstate';
import type { HostState, Reason } from '../schemas/messages.ts';
import { ejectionMs, type EjectionTimes } from './ejection.ts';

export interface HostContext {
  /** When the current state was entered, ms. */
  since: number;
  /** Why the current state was entered. */
  reason: Reason;
  /** Ejections so far (decays while healthy); scales the ejection time. */
  ejections: number;
  /**
   * When an ejection ends (overloaded → probing/healthy), ms; never later
   * than the moment the host left `overloaded`. While draining: at or after
   * `since` when the host was out (overloaded or probing) when drained.
   */
  ejectUntil: number;
}

export type HostEvent =
  /** A threshold crossed (healthy/probing → overloaded); the n-th ejection lasts `ejectionMs` of these times (./ejection.ts). */
  | ({ type: 'EJECT'; reason: Reason; now: number } & EjectionTimes)
  /** Recovery by Lars' success rules (overloaded → healthy, lars) or by probe success (probing → healthy). */
  | { type: 'RECOVER'; reason: Reason; now: number }
  /** The ejection time elapsed: to probing (default) or straight to healthy (lars, overload_timeout). */
  | { type: 'EJECTION_ELAPSED'; now: number; /** default `timeout`; `admin_clear` when an operator ends it */ reason?: Reason }
  /** Removed from the registry. */
  | { type: 'DRAIN'; now: number; /** default `removed`; `admin_drain` for a maintenance drain */ reason?: Reason }
  /** Added back while draining: healthy, or back out when drained while out (see the module comment). */
  | { type: 'READD'; now: number; /** default `readded`; `admin_undrain` */ reason?: Reason }
  /** A healthy host went ejection_decay_time without an ejection: one ejection is forgiven. */
  | { type: 'DECAY'; now: number }
  /**
   * The route switched to the lars profile, which has no probing state: a
   * probing host becomes overloaded under Lars' rules (counters as on
   * set_overload, a fresh overload_timeout of `ejectMs`). The ejection count
   * is kept: the host was already out.
   */
  | { type: 'PROFILE_LARS'; reason: Reason; now: number; ejectMs: number }
  /**
   * A host resumes where a previous owner of the route left it (a restart or
   * a failover). Legal only in `healthy`, the state a host is created in; it
   * stamps the previous owner's context. The lars machine turns a restored
   * `probing` into `overloaded`.
   */
  | { type: 'RESTORE'; state: HostState; since: number; reason: Reason; ejections: number; ejectUntil: number };

/** What a host is created with: the machine's initial context. */
export interface HostInput {
  /** Creation time, ms: the `since` of the initial `healthy` state. */
  now: number;
}

/** The initial state of every host. */
export const INITIAL_STATE = 'healthy' satisfies HostState;

/** The initial context of a host created at `input.now` (the machine's `context`; routes create hosts with it). */
export function initialContext(input: HostInput): HostContext {
  return { since: input.now, reason: 'registered', ejections: 0, ejectUntil: 0 };
}

const machineSetup = setup({
  types: {
    context: {} as HostContext,
    events: {} as HostEvent,
    input: {} as HostInput,
  },
  guards: {
    /** default profile: recovery goes through probing; lars: straight back (provided as false). */
    probesBeforeRecovery: () => true,
    /** A RESTORE event whose recorded state is overloaded / probing / draining. */
    restoresOverloaded: ({ event }) => event.type === 'RESTORE' && event.state === 'overloaded',
    restoresProbing: ({ event }) => event.type === 'RESTORE' && event.state === 'probing',
    restoresDraining: ({ event }) => event.type === 'RESTORE' && event.state === 'draining',
    hasEjections: ({ context }) => context.ejections > 0,
    /** Draining, drained while its ejection runs, and the ejection has not ended yet. */
    ejectionRunning: ({ context, event }) => event.type === 'READD' && context.ejectUntil > event.now,
    /** Draining, drained while out (overloaded or probing). */
    drainedWhileOut: ({ context }) => context.ejectUntil >= context.since,
  },
  actions: {
    eject: assign(({ event, context }) => {
      if (event.type !== 'EJECT') return {};
      const ejections = context.ejections + 1;
      const ms = ejectionMs(event, event.reason, ejections);
      return { since: event.now, reason: event.reason, ejections, ejectUntil: event.now + ms };
    }),
    // leaving an ejection (recovered, elapsed or cleared by an operator) ends its deadline there
    recover: assign(({ event, context }) => (event.type === 'RECOVER' ? { since: event.now, reason: event.reason, ejectUntil: Math.min(context.ejectUntil, event.now) } : {})),
    elapsed: assign(({ event, context }) =>
      event.type === 'EJECTION_ELAPSED' ? { since: event.now, reason: event.reason ?? ('timeout' as const), ejectUntil: Math.min(context.ejectUntil, event.now) } : {},
    ),
    // a healthy host's deadline stays before the drain; an ejected or probing host's at or after it
    drain: assign(({ event, context }) =>
      event.type === 'DRAIN' ? { since: event.now, reason: event.reason ?? ('removed' as const), ejectUntil: Math.min(context.ejectUntil, event.now - 1) } : {},
    ),
    drainOut: assign(({ event, context }) =>
      event.type === 'DRAIN' ? { since: event.now, reason: event.reason ?? ('removed' as const), ejectUntil: Math.max(context.ejectUntil, event.now) } : {},
    ),
    readd: assign(({ event }) => (event.type === 'READD' ? { since: event.now, reason: event.reason ?? ('readded' as const) } : {})),
    decay: assign(({ context }) => ({ ejections: context.ejections - 1 })),
    adoptLars: assign(({ event }) =>
      event.type === 'PROFILE_LARS' ? { since: event.now, reason: event.reason, ejectUntil: event.now + event.ejectMs } : {},
    ),
    restore: assign(({ event }) =>
      event.type === 'RESTORE' ? { since: event.since, reason: event.reason, ejections: event.ejections, ejectUntil: event.ejectUntil } : {},
    ),
  },
});

export const hostMachine = machineSetup.createMachine({
  id: 'host',
  context: ({ input }) => initialContext(input),
  initial: INITIAL_STATE,
  states: {
    healthy: {
      on: {
        EJECT: { target: 'overloaded', actions: 'eject' },
        DRAIN: { target: 'draining', actions: 'drain' },
        DECAY: { guard: 'hasEjections', actions: 'decay' },
        RESTORE: [
          { guard: 'restoresOverloaded', target: 'overloaded', actions: 'restore' },
          { guard: and(['restoresProbing', 'probesBeforeRecovery']), target: 'probing', actions: 'restore' },
          // lars has no probing state: a probing host is overloaded under its rules
          { guard: 'restoresProbing', target: 'overloaded', actions: 'restore' },
          { guard: 'restoresDraining', target: 'draining', actions: 'restore' },
          // healthy: the state stays, the context is the previous owner's
          { actions: 'restore' },
        ],
      },
    },
    overloaded: {
      on: {
        EJECTION_ELAPSED: [
          { guard: 'probesBeforeRecovery', target: 'probing', actions: 'elapsed' },
          { target: 'healthy', actions: 'elapsed' },
        ],
        RECOVER: { guard: not('probesBeforeRecovery'), target: 'healthy', actions: 'recover' },
        DRAIN: { target: 'draining', actions: 'drainOut' },
      },
    },
    probing: {
      on: {
        RECOVER: { target: 'healthy', actions: 'recover' },
        EJECT: { target: 'overloaded', actions: 'eject' },
        DRAIN: { target: 'draining', actions: 'drainOut' },
        PROFILE_LARS: { guard: not('probesBeforeRecovery'), target: 'overloaded', actions: 'adoptLars' },
      },
    },
    draining: {
      on: {
        READD: [
          // drained while out: the rest of its ejection, or the probing that follows one (lars: healthy)
          { guard: 'ejectionRunning', target: 'overloaded', actions: 'readd' },
          { guard: and(['drainedWhileOut', 'probesBeforeRecovery']), target: 'probing', actions: 'readd' },
          { target: 'healthy', actions: 'readd' },
        ],
      },
    },
  },
});
export type HostMachine = typeof hostMachine;

/** Plain-field form of a host's machine state, as a route keeps it. */
export interface HostFields extends HostContext {
  state: HostState;
}

/**
 * Applies `event` to a host's state with xstate's pure transition function.
 * The fields are updated in place (state and context); returns true when the
 * state changed. An event the state does not handle changes nothing.
 */
export function step(machine: HostMachine, fields: HostFields, event: HostEvent): boolean {
  const snapshot = machine.resolveState({
    value: fields.state,
    context: { since: fields.since, reason: fields.reason, ejections: fields.ejections, ejectUntil: fields.ejectUntil },
  });
  const [next] = transition(machine, snapshot, event);
  const value = next.value as HostState;
  const changed = value !== fields.state;
  fields.state = value;
  fields.since = next.context.since;
  fields.reason = next.context.reason;
  fields.ejections = next.context.ejections;
  fields.ejectUntil = next.context.ejectUntil;
  return changed;
}

type RestoreEvent = Extract<HostEvent, { type: 'RESTORE' }>;
const restoreTargets = new WeakMap<HostMachine, Map<HostState, HostState>>();

/**
 * `step(machine, fields, restoreEvent)` for a host in its initial state, at
 * a fraction of the cost: a takeover restores every host of thousands of
 * routes, and a transition costs about 14 µs. The state the machine gives a
 * recorded state (a profile's rule: lars has no probing) is asked of the
 * machine itself, once per machine and recorded state, and kept; the context
 * is the recorded one, as the machine's `restore` action sets it. A host not
 * in its initial state goes through `step`.
 */
export function restore(machine: HostMachine, fields: HostFields, event: RestoreEvent): boolean {
  if (fields.state !== INITIAL_STATE) return step(machine, fields, event);
  let targets = restoreTargets.get(machine);
  if (targets === undefined) restoreTargets.set(machine, (targets = new Map<HostState, HostState>()));
  let target = targets.get(event.state);
  if (target === undefined) {
    const probe: HostFields = { state: INITIAL_STATE, since: 0, reason: 'registered', ejections: 0, ejectUntil: 0 };
    step(machine, probe, { ...event, since: 0, ejections: 0, ejectUntil: 0 });
    target = probe.state;
    targets.set(event.state, target);
  }
  const changed = target !== fields.state;
  fields.state = target;
  fields.since = event.since;
  fields.reason = event.reason;
  fields.ejections = event.ejections;
  fields.ejectUntil = event.ejectUntil;
  return changed;
}
