/**
 * Which agent sends a probing host its trial calls (probe_trial_timeout):
 * one agent at a time, named in the route state, so a sick host is not
 * probed by every caller at once.
 *
 * A route keeps one `TrialAgents`: the agents it heard from most recently
 * (the sender of the latest report batch and the latest one other than it,
 * with when each was last heard, by the `now` of `ingest`), and the rules that
 * name, replace and drop a probing host's trial agent from them. The host's
 * own trial fields (`trialAgent`, `trialTs`) are on its slot. Bounded to the
 * two senders the naming rule reads (the latest other than one gone silent),
 * so thousands of agents cost the route nothing more, and ingest does no
 * allocation for it.
 *
 * Every method that changes a host's trial agent returns true when it did:
 * the route then publishes a new version (outside panic, where no trial agent
 * is published).
 */
import type { RouteCheckpoint } from './checkpoint.ts';
import type { HostSlot } from './host-slot.ts';
import type { RouteParams } from './params.ts';

/** The time of a sender never heard (or heard at a time an older checkpoint did not record). */
export const NEVER = -Infinity;

/** The senders a checkpoint keeps. */
export type TrialSenders = Pick<RouteCheckpoint, 'last_sender' | 'prev_sender' | 'last_heard' | 'prev_heard'>;

export class TrialAgents {
  /** The route's parameters (probe_trial_timeout), replaced with them. */
  params: RouteParams;
  private lastSender: string | undefined = undefined;
  private lastHeard = NEVER;
  private prevSender: string | undefined = undefined;
  private prevHeard = NEVER;

  constructor(params: RouteParams) {
    this.params = params;
  }

  /** A report batch from `sender` at `now`. */
  heard(sender: string, now: number): void {
    if (sender !== this.lastSender) {
      this.prevSender = this.lastSender;
      this.prevHeard = this.lastHeard;
      this.lastSender = sender;
    }
    this.lastHeard = now;
  }

  /**
   * Names the agent that sends a probing host its trial calls: the sender of
   * the latest report batch, if it was heard within probe_trial_timeout (an
   * agent calling the route now). None while no agent was heard lately, or
   * when probe_trial_timeout is 0.
   */
  name(s: HostSlot, now: number): boolean {
    if (this.params.probe_trial_timeout <= 0) return false;
    const next = this.recentSender(now, undefined);
    if (next === undefined) return false;
    return this.set(s, next, now);
  }

  /** A probing host gets a trial agent when an agent was heard lately, another one when its own went silent (`replace`). */
  tick(slots: readonly HostSlot[], now: number): boolean {
    const limit = this.params.probe_trial_timeout * 1000;
    if (limit <= 0) return false;
    let changed = false;
    for (const s of slots) {
      if (s.state !== 'probing') continue;
      if (s.trialAgent === undefined) changed = this.name(s, now) || changed;
      else if (now - s.trialTs >= limit) changed = this.replace(s, s.trialAgent, now) || changed;
    }
    return changed;
  }

  /**
   * When `tick` can next change the trial agent of host `s`, ms (Infinity:
   * not by time alone): at its timeout (trialTs + probe_trial_timeout) when
   * another agent heard lately is there to take over then, else once the
   * agent itself has not been heard for probe_trial_timeout (it is dropped).
   * A timeout the last tick (at `lastTick`) already judged (it kept the agent:
   * no other agent was heard) is judged again only when the agent goes quiet.
   * A probing host without a trial agent gets one only from a report batch
   * (an agent heard lately): the tick that follows the batch names it.
   */
  due(s: HostSlot, lastTick: number): number {
    const trialMs = this.params.probe_trial_timeout * 1000;
    const agent = s.trialAgent;
    if (s.state !== 'probing' || trialMs <= 0 || agent === undefined) return Infinity;
    const at = Math.max(s.trialTs + trialMs, lastTick);
    if (this.recentSender(at, agent) !== undefined) return at;
    return Math.max(at, this.heardAt(agent) + trialMs);
  }

  /** What a checkpoint keeps: the two senders, and when each was heard if known. */
  save(): TrialSenders {
    return {
      ...(this.lastSender !== undefined ? { last_sender: this.lastSender } : {}),
      ...(this.lastSender !== undefined && this.lastHeard !== NEVER ? { last_heard: this.lastHeard } : {}),
      ...(this.prevSender !== undefined ? { prev_sender: this.prevSender } : {}),
      ...(this.prevSender !== undefined && this.prevHeard !== NEVER ? { prev_heard: this.prevHeard } : {}),
    };
  }

  /** Resumes what `save` kept. */
  load(cp: TrialSenders): void {
    this.lastSender = cp.last_sender;
    this.prevSender = cp.prev_sender;
    // an older checkpoint did not record when: those agents count as not heard lately
    this.lastHeard = cp.last_heard ?? NEVER;
    this.prevHeard = cp.prev_heard ?? NEVER;
  }

  /**
   * A probing host's trial agent reported nothing of it for
   * probe_trial_timeout: the latest other agent heard within that time (so
   * since the silent one's last trial) takes over. With none, the silent
   * agent keeps the host while it is still heard (it calls the route, its
   * picks have not landed on the host yet), and is dropped once it is not:
   * one version, then none until an agent reports again. Agents that closed
   * are never named, and an idle route does not hand its trials around.
   */
  private replace(s: HostSlot, silent: string, now: number): boolean {
    const next = this.recentSender(now, silent);
    if (next !== undefined) return this.set(s, next, now);
    if (now - this.heardAt(silent) >= this.params.probe_trial_timeout * 1000) return this.set(s, undefined, now);
    return false;
  }

  private set(s: HostSlot, agent: string | undefined, now: number): boolean {
    if (agent === s.trialAgent) return false;
    s.trialAgent = agent;
    s.trialTs = now;
    return true;
  }

  /** When `sender` was last heard, if it is one of the two latest senders (NEVER otherwise: older than both). */
  private heardAt(sender: string): number {
    if (sender === this.lastSender) return this.lastHeard;
    if (sender === this.prevSender) return this.prevHeard;
    return NEVER;
  }

  /**
   * The agent heard most recently other than `except`, if it was heard within
   * probe_trial_timeout of `now`: an agent calling the route now.
   */
  private recentSender(now: number, except: string | undefined): string | undefined {
    const windowMs = this.params.probe_trial_timeout * 1000;
    if (this.lastSender !== except) return this.lastSender !== undefined && now - this.lastHeard < windowMs ? this.lastSender : undefined;
    return this.prevSender !== undefined && now - this.prevHeard < windowMs ? this.prevSender : undefined;
  }
}
