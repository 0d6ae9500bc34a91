/** A route as a route node holds it: its actor and where its state stands in the routes bucket. */
import type { RouteState, RouteEvent } from '../../schemas/messages.ts';
import type { RouteActor } from '../../actors/route.ts';

export interface RouteSlot {
  actor: RouteActor;
  partition: number;
  /** Registry revision last applied. */
  registryRevision: number;
  /** Routes KV revision of our last write (fencing), 0 = key absent. */
  kvRevision: number | undefined;
  /** `kvRevision` came from the checkpoint, not from a read of the routes bucket: true until a write succeeds on it. */
  unverified?: boolean;
  /** Resumed from a checkpoint that had nothing unpublished, and reached by nothing since (no report, no registry entry): its first publish can wait (`republish`). */
  takeover?: boolean;
  /** Highest version of the route the routes bucket has acknowledged from this node (or held when the route was restored). */
  ackedVersion: number;
  /**
   * The next state is published only once stored (set at a restore): the
   * revision it was restored from may be stale, and the compare-and-set of
   * that first write proves it is not before anything goes to the agents.
   */
  storeFirst: boolean;
  /** Versions whose write timed out: one of them found stored under this node's name was this node's own write. */
  uncertain?: Set<number>;
  /** A state stored while the lease was not fresh: published once it is renewed. */
  unsent?: PendingWrite;
  /** Events of states never published (replaced while waiting): they go out with the route's next publish. */
  carried?: RouteEvent[];
}

/** A route state waiting for its KV write: its encoding as published (or to publish). */
export interface PendingWrite {
  data: Uint8Array;
  removed: boolean;
  version: number;
  /** Not published yet: published, with these events, once stored. */
  held?: { state: RouteState; events: RouteEvent[]; at: number };
}
