/** Helpers the strategies share for reading a `PickView`, and the agents for building one. */
import type { RouteHost } from '../../schemas/messages.ts';
import type { PickableHost } from './types.ts';

/**
 * The weight agent `agentId` picks host `h` with: its `pick_weight`, but 0
 * for a probing host whose trial calls are another agent's (the route
 * state's `trial_agent`): one agent at a time probes it.
 */
export function trialWeight(h: RouteHost, agentId: string): number {
  const t = h.trial_agent;
  return t !== undefined && t !== agentId && h.state === 'probing' ? 0 : h.pick_weight;
}

/** Identity of a host within a route. */
export function hostKey(h: PickableHost): string {
  return `${h.ip}:${h.port}`;
}

/**
 * Snapshot of a host list's identities, taken on `update`: the agent may hand
 * the same array again with hosts replaced, so a reference is not enough.
 */
export function hostKeys(hosts: readonly PickableHost[]): string[] {
  return hosts.map(hostKey);
}

/** True when `hosts` names the hosts of the snapshot `keys`, in the same order. */
export function sameHostSet(keys: readonly string[], hosts: readonly PickableHost[]): boolean {
  if (keys.length !== hosts.length) return false;
  for (let i = 0; i < keys.length; i++) if (keys[i] !== hostKey(hosts[i]!)) return false;
  return true;
}

/**
 * Indices into `view.hosts` of the hosts with a positive pick weight, and
 * their weights. Non-finite weights count as 0.
 */
export function positiveHosts(hosts: readonly PickableHost[]): { idx: Int32Array<ArrayBuffer>; weights: Float64Array<ArrayBuffer> } {
  let n = 0;
  for (const h of hosts) if (isPickable(h.pickWeight)) n++;
  const idx = new Int32Array(n);
  const weights = new Float64Array(n);
  let j = 0;
  for (let i = 0; i < hosts.length; i++) {
    const w = hosts[i]!.pickWeight;
    if (!isPickable(w)) continue;
    idx[j] = i;
    weights[j] = w;
    j++;
  }
  return { idx, weights };
}

function isPickable(w: number): boolean {
  return w > 0 && Number.isFinite(w);
}

/** Element-wise equality of two compacted host lists. */
export function sameWeights(ai: Int32Array, aw: Float64Array, bi: Int32Array, bw: Float64Array): boolean {
  if (ai.length !== bi.length) return false;
  for (let i = 0; i < ai.length; i++) if (ai[i] !== bi[i] || aw[i] !== bw[i]) return false;
  return true;
}
