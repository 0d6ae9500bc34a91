/**
 * Where a route taken over (by a new owner, after a loss, at a restart)
 * resumes from: its checkpoint when it is as new as the route's last
 * published state, else that state; and the version it continues from.
 * Pure: the route node reads the checkpoint and the published state, calls
 * `planResume`, and builds the route actor from the plan.
 */
import type { RouteState } from '../schemas/messages.ts';
import type { RouteCheckpoint } from './checkpoint.ts';

/**
 * Versions a route may publish beyond the last one the routes bucket
 * acknowledged. A node restoring a route from its stored state starts
 * PUBLISH_LEAD + 1 above it (restoreVersion): above every version the
 * previous owner may have published. Beyond the lead a route's states wait
 * for their writes (a routes bucket that stops answering holds them back
 * after PUBLISH_LEAD changes, not at once).
 */
export const PUBLISH_LEAD = 16;

/** The version a route restored from a stored (or checkpointed) `version` continues from. */
export function restoreVersion(version: number): number {
  return version === 0 ? 0 : version + PUBLISH_LEAD + 1;
}

/** What a new owner found of a route. */
export interface ResumeInput {
  modid: number;
  cmdid: number;
  /** The route's last published state and its routes-bucket revision (undefined: none, or not read). */
  last: { state: RouteState; revision: number } | undefined;
  /** The route's latest checkpoint (undefined: none). */
  checkpoint: RouteCheckpoint | undefined;
  /** The routes-bucket revision stored with the checkpoint, when the published state was not read (a handover record). */
  rev: number | undefined;
}

/** How a route resumes. */
export interface ResumePlan {
  /** The checkpoint to resume from, its version moved up (restoreVersion) and marked changed: the new owner publishes the route under its name at once. */
  checkpoint: RouteCheckpoint | undefined;
  /** The published state to resume from when there is no (usable) checkpoint; a removed route comes back with no hosts, its version continuing. */
  restored: RouteState | undefined;
  /** Resumed from a checkpoint with nothing left unpublished: the publish under the new owner's name may wait. */
  quiet: boolean;
  /** The highest version known stored (the routes bucket's acknowledgement the route starts from). */
  stored: number;
  /** The routes-bucket revision the first fenced write expects (0: key absent). */
  kvRevision: number;
  /** `kvRevision` came from the checkpoint, not from a read of the routes bucket. */
  unverified: boolean;
  /** The previous owner published pickable hosts: a resumed route with none must start its hosts afresh (`afreshState`). */
  keepPickable: boolean;
}

export function planResume(i: ResumeInput): ResumePlan {
  const { last, rev } = i;
  const cp = i.checkpoint;
  const fresh = cp && (!last || cp.version >= last.state.version) ? cp : undefined;
  // The previous owner may have published up to PUBLISH_LEAD versions beyond what it stored: this node's
  // versions start above all of them (restoreVersion), so that none goes backwards and none means two contents.
  const checkpoint = fresh && !fresh.removed ? { ...fresh, version: restoreVersion(fresh.version), dirty: true } : undefined;
  let restored = last?.state === undefined ? undefined : { ...last.state, version: restoreVersion(last.state.version) };
  if (restored?.removed || fresh?.removed) restored = { ...(restored ?? emptyState(i.modid, i.cmdid)), version: restoreVersion(Math.max(last?.state.version ?? 0, fresh?.version ?? 0)), hosts: [] };
  return {
    checkpoint,
    restored,
    quiet: checkpoint !== undefined && !fresh!.dirty && fresh!.pending.length === 0,
    stored: Math.max(last?.state.version ?? 0, fresh?.version ?? 0),
    kvRevision: last?.revision ?? rev ?? 0,
    unverified: !last && rev !== undefined,
    keepPickable: last !== undefined && hasPickable(last.state),
  };
}

/**
 * The state a route resumes from when the plan left it with no pickable
 * host although the previous owner published some (`keepPickable`): never
 * replace them with none because the restore went wrong; the host states
 * start afresh, the version above both the published state and the checkpoint.
 */
export function afreshState(last: RouteState, plan: ResumePlan): RouteState {
  return { ...last, version: Math.max(restoreVersion(last.version), plan.checkpoint?.version ?? 0), hosts: [] };
}

export function hasPickable(s: RouteState): boolean {
  return s.hosts.some((h) => h.pick_weight > 0);
}

/** A placeholder published state carrying only a version to continue from. */
function emptyState(modid: number, cmdid: number): RouteState {
  return { v: 1, sender: '', modid, cmdid, version: 0, ts: 0, profile: 'default', panic: false, removed: true, probe_num: 0, hosts: [] };
}
