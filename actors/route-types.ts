/** The route actor's options and results (actors/route.ts). */
import type { RegistryEntry, RouteEvent, RouteState } from '../schemas/messages.ts';
import type { RouteCheckpoint } from './checkpoint.ts';

export interface IngestResult {
  /** Reports applied to known hosts. */
  applied: number;
  /** Reports for hosts this route does not have (dropped). */
  unknownHost: number;
}

export interface RouteChanges {
  state: RouteState;
  events: RouteEvent[];
}

export interface RouteActorOptions {
  modid: number;
  cmdid: number;
  /** Sender id stamped on published messages. */
  nodeId: string;
  entry: RegistryEntry;
  now: number;
  /**
   * The route's full state as another node left it (`checkpoint()`): the
   * actor resumes exactly there, then applies `entry` as a registry update.
   * Takes precedence over `restored`. Ignored when it is for another route.
   */
  checkpoint?: RouteCheckpoint;
  /**
   * Last published state (from the routes KV), to resume version and host
   * states after a restart when there is no checkpoint. It lacks the
   * counters: they start afresh, and an ejected host counts one ejection,
   * ending one base ejection time (lars: overload_timeout) from now, never
   * past max_ejection_time (actors/ejection.ts).
   */
  restored?: RouteState;
}
