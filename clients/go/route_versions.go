package lars

// The order of a followed route's states (actors/route-versions.ts):
// versions never go backwards, except when the routes bucket shows that they
// started again (a server back on a fresh store).

// versionStamp is what the rules need of a state.
type versionStamp struct {
	version uint64
	ts      float64
	removed bool
}

func stampOf(s *RouteState) *versionStamp {
	if s == nil {
		return nil
	}
	return &versionStamp{s.Version, s.Ts, s.Removed}
}

type stateVerdict string

const (
	// newer than the one held (or none held, or the versions started again): applied
	verdictApply stateVerdict = "apply"
	// not newer: ignored
	verdictStale stateVerdict = "stale"
	// older, but published later than the one held: ignored, and the store is
	// read to tell a late message from versions that started again
	verdictStaleCheckStore stateVerdict = "stale_check_store"
)

// stateVerdictOf says what to do with a state s of the route, holding held
// (nil: none yet), versionReset set by versionsStartedAgain.
func stateVerdictOf(held *versionStamp, s versionStamp, versionReset bool) stateVerdict {
	if held == nil || s.version > held.version || versionReset {
		return verdictApply
	}
	if s.version < held.version && s.ts > held.ts {
		return verdictStaleCheckStore
	}
	return verdictStale
}

// versionsStartedAgain: a read of the routes bucket (stored nil: the key is
// missing) says the route's versions started again while held is held: the
// store has no state for a route held live, or an older version published
// later than the one held (a stale read from a lagging replica is older in
// both). Once said, it is not said again until the next state is applied.
func versionsStartedAgain(held, stored *versionStamp, versionReset bool) bool {
	if held == nil || held.removed || versionReset {
		return false
	}
	return stored == nil || (stored.version < held.version && stored.ts > held.ts)
}
