/**
 * The per-host node-state machine (xstate v5).
 *
 * States: healthy (Lars "idle"), overloaded (ejected), probing (half-open,
 * trial traffic), draining (removed from the registry). The machine holds the
 * legal transitions and what each one stamps (reason, since, ejection count
 * and deadline). The per-report arithmetic that decides *when* to send an
 * event lives in route.ts as plain fields: a report is not an xstate event.
 *
 * Hosts do not run as started actors. A route keeps each host's state value
 * and context in plain fields and computes the next state with xstate's pure
 * `transition()` only when an event can change it (see docs/state-machine.md
 * for the memory figures behind this choice).
 */
import { setup, assign, not, transition } from 'xstate';
import type { HostState, Reason } from '../schemas/messages.ts';

export interface NodeContext {
  /** When the current state was entered, ms. */
  since: number;
  /** Why the current state was entered. */
  reason: Reason;
  /** Ejections so far (decays while healthy); scales the ejection time. */
  ejections: number;
  /** When an ejection ends (overloaded → probing/healthy), ms. */
  ejectUntil: number;
}

export type NodeEvent =
  /** A threshold crossed (healthy/probing → overloaded). */
  | { type: 'EJECT'; reason: Reason; now: number; baseMs: number; maxMs: number }
  /** Recovery by Lars' success rules (overloaded → healthy, lars) or by probe success (probing → healthy). */
  | { type: 'RECOVER'; reason: Reason; now: number }
  /** The ejection time elapsed: to probing (default) or straight to healthy (lars, overload_timeout). */
  | { type: 'EJECTION_ELAPSED'; now: number }
  /** Removed from the registry. */
  | { type: 'DRAIN'; now: number }
  /** Added back while draining. */
  | { type: 'READD'; now: number };

export interface NodeInput {
  now: number;
  reason?: Reason;
}

const machineSetup = setup({
  types: {
    context: {} as NodeContext,
    events: {} as NodeEvent,
    input: {} as NodeInput,
  },
  guards: {
    /** default profile: recovery goes through probing; lars: straight back. */
    probesBeforeRecovery: () => true,
  },
  actions: {
    eject: assign(({ event, context }) => {
      if (event.type !== 'EJECT') return {};
      const ejections = context.ejections + 1;
      const ms = Math.min(event.baseMs * ejections, event.maxMs);
      return { since: event.now, reason: event.reason, ejections, ejectUntil: event.now + ms };
    }),
    recover: assign(({ event }) => (event.type === 'RECOVER' ? { since: event.now, reason: event.reason } : {})),
    elapsed: assign(({ event }) => (event.type === 'EJECTION_ELAPSED' ? { since: event.now, reason: 'timeout' as const } : {})),
    drain: assign(({ event }) => (event.type === 'DRAIN' ? { since: event.now, reason: 'removed' as const } : {})),
    readd: assign(({ event }) => (event.type === 'READD' ? { since: event.now, reason: 'readded' as const } : {})),
  },
});

export const nodeMachine = machineSetup.createMachine({
  id: 'node',
  context: ({ input }) => ({ since: input.now, reason: input.reason ?? 'registered', ejections: 0, ejectUntil: 0 }),
  initial: 'healthy',
  states: {
    healthy: {
      on: {
        EJECT: { target: 'overloaded', actions: 'eject' },
        DRAIN: { target: 'draining', actions: 'drain' },
      },
    },
    overloaded: {
      on: {
        EJECTION_ELAPSED: [
          { guard: 'probesBeforeRecovery', target: 'probing', actions: 'elapsed' },
          { target: 'healthy', actions: 'elapsed' },
        ],
        RECOVER: { guard: not('probesBeforeRecovery'), target: 'healthy', actions: 'recover' },
        DRAIN: { target: 'draining', actions: 'drain' },
      },
    },
    probing: {
      on: {
        RECOVER: { target: 'healthy', actions: 'recover' },
        EJECT: { target: 'overloaded', actions: 'eject' },
        DRAIN: { target: 'draining', actions: 'drain' },
      },
    },
    draining: {
      on: {
        READD: { target: 'healthy', actions: 'readd' },
      },
    },
  },
});
export type NodeMachine = typeof nodeMachine;

/** The machine of a profile: default probes before recovery; lars goes straight back to healthy. */
export function machineFor(profile: 'lars' | 'default'): NodeMachine {
  return profile === 'lars' ? larsMachine : nodeMachine;
}

const larsMachine = nodeMachine.provide({ guards: { probesBeforeRecovery: () => false } });

/** Plain-field form of a host's machine state, as a route keeps it. */
export interface NodeFields extends NodeContext {
  state: HostState;
}

/**
 * Applies `event` to a host's state with xstate's pure transition function.
 * Returns true when the state changed; the fields are updated in place.
 */
export function step(machine: NodeMachine, fields: NodeFields, event: NodeEvent): boolean {
  const snapshot = machine.resolveState({
    value: fields.state,
    context: { since: fields.since, reason: fields.reason, ejections: fields.ejections, ejectUntil: fields.ejectUntil },
  });
  const [next] = transition(machine, snapshot, event);
  const value = next.value as HostState;
  if (value === fields.state) return false;
  fields.state = value;
  fields.since = next.context.since;
  fields.reason = next.context.reason;
  fields.ejections = next.context.ejections;
  fields.ejectUntil = next.context.ejectUntil;
  return true;
}
