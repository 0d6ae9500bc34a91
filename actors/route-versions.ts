/**
 * The order of a followed route's states (src/agent/route-follower.ts, and
 * every SDK that follows routes): versions never go backwards, except when
 * the routes bucket shows that they started again (a server back on a fresh
 * store). Pure: the follower reads the store and the subject, these rules
 * say what each read means.
 */

/** What the rules need of a state: its version, when it was published, and whether it removes the route. */
export interface VersionStamp {
  readonly version: number;
  readonly ts: number;
  readonly removed?: boolean;
}

export const StateVerdict = {
  /** Newer than the one held (or none held, or the versions started again): applied. */
  apply: 'apply',
  /** Not newer: ignored. */
  stale: 'stale',
  /** Older, but published later than the one held: ignored, and the store is read to tell a late message from versions that started again. */
  staleCheckStore: 'stale_check_store',
} as const;
export type StateVerdict = (typeof StateVerdict)[keyof typeof StateVerdict];

/** What to do with a state `s` of the route, holding `held` (none yet: undefined), `versionReset` set by versionsStartedAgain. */
export function stateVerdict(held: VersionStamp | undefined, s: VersionStamp, versionReset: boolean): StateVerdict {
  if (held === undefined || s.version > held.version || versionReset) return StateVerdict.apply;
  return s.version < held.version && s.ts > held.ts ? StateVerdict.staleCheckStore : StateVerdict.stale;
}

/**
 * Whether a read of the routes bucket (`stored`: the stored state, undefined
 * when the key is missing) says the route's versions started again while
 * `held` is held: the store has no state for a route held live, or an older
 * version published later than the one held. A stale read from a lagging
 * replica is older in both. Once said (`versionReset`), it is not said again
 * until the next state is applied.
 */
export function versionsStartedAgain(held: VersionStamp | undefined, stored: VersionStamp | undefined, versionReset: boolean): boolean {
  if (held === undefined || held.removed === true || versionReset) return false;
  return stored === undefined || (stored.version < held.version && stored.ts > held.ts);
}
