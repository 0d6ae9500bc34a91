package lars

import (
	"context"
	"errors"
	"testing"
	"time"
)

// Unit tests of the agent's parts without a server: the route following's version order and held updates, Watch.

func testAgent(t *testing.T) (*Agent, *followed) {
	t.Helper()
	o, err := resolve(Options{Strategy: StrategySwrr})
	if err != nil {
		t.Fatal(err)
	}
	n, _ := newNames(o.Prefix)
	a := &Agent{o: o, id: o.AgentID, names: n, done: make(chan struct{})}
	r := &followed{modid: 1, cmdid: 1, loaded: make(chan struct{}), watchers: map[chan RouteState]struct{}{}, nowFn: a.nowMs}
	r.model = newAgentRoute(a.id, o.Strategy, a.newStrategy(SeededRandom(1), a.nowMs))
	r.model.modid, r.model.cmdid, r.model.owner = 1, 1, r
	a.routes.Store(routeKey(1, 1), r)
	return a, r
}

func TestRouteVersionsNeverGoBackwards(t *testing.T) {
	a, r := testAgent(t)
	a.apply(r, tenHostState(5))
	if st, _ := a.pickFrom(r, "", false); st.IP == "" {
		t.Fatal("no pick from a loaded route")
	}
	older := tenHostState(4)
	older.Hosts = older.Hosts[:1]
	a.onMessage(r, encodeRouteState(older), "lars.route.1.1")
	if r.state.Version != 5 || len(r.model.hosts) != 10 || a.counters.stale.Load() != 1 {
		t.Fatalf("an older version was applied: version %d, %d hosts", r.state.Version, len(r.model.hosts))
	}
	newer := tenHostState(6)
	newer.Hosts = newer.Hosts[:2]
	a.onMessage(r, encodeRouteState(newer), "lars.route.1.1")
	if r.state.Version != 6 || len(r.model.hosts) != 2 {
		t.Fatalf("the newer version was not applied: version %d, %d hosts", r.state.Version, len(r.model.hosts))
	}
	// a state of another route on this route's subject is refused
	other := tenHostState(7)
	other.Cmdid = 2
	a.onMessage(r, encodeRouteState(other), "lars.route.1.1")
	if r.state.Version != 6 || a.rejects.snapshot()[RejectSubjectMismatch] != 1 {
		t.Fatalf("subject mismatch: version %d, rejects %v", r.state.Version, a.rejects.snapshot())
	}
	a.onMessage(r, []byte{0xc1}, "lars.route.1.1")
	if a.rejects.snapshot()[RejectMalformed] != 1 {
		t.Fatalf("malformed not counted: %v", a.rejects.snapshot())
	}
}

func TestEmptyUpdateIsHeldRemovalIsNot(t *testing.T) {
	a, r := testAgent(t)
	a.apply(r, tenHostState(1))
	empty := tenHostState(2)
	for i := range empty.Hosts {
		empty.Hosts[i].PickWeight = 0 // healthy with weight 0: no reason given
	}
	a.apply(r, empty)
	if r.state.Version != 1 || a.counters.held.Load() != 1 {
		t.Fatalf("an update with no pickable host and no reason was applied (version %d)", r.state.Version)
	}
	if _, err := a.pickFrom(r, "", false); err != nil {
		t.Fatalf("picking from the held state: %v", err)
	}
	gone := tenHostState(3)
	gone.Removed, gone.Hosts = true, nil
	a.apply(r, gone)
	if _, err := a.pickFrom(r, "", false); !errors.Is(err, ErrNoRoute) {
		t.Fatalf("a removed route answers %v, want ErrNoRoute", err)
	}
}

func TestNoHostWhenEveryHostIsOverloaded(t *testing.T) {
	a, r := testAgent(t)
	s := tenHostState(1)
	for i := range s.Hosts {
		s.Hosts[i].State, s.Hosts[i].PickWeight = StateOverloaded, 0
	}
	a.apply(r, s)
	if _, err := a.pickFrom(r, "", false); !errors.Is(err, ErrNoHost) {
		t.Fatalf("got %v, want ErrNoHost", err)
	}
}

func TestWatchGivesTheCurrentStateThenNewerOnes(t *testing.T) {
	a, r := testAgent(t)
	r.status.Store(statusLoading)
	a.apply(r, tenHostState(1))
	close(r.loaded)
	ctx, cancel := context.WithCancel(context.Background())
	ch, err := a.Watch(ctx, 1, 1)
	if err != nil {
		t.Fatal(err)
	}
	if s := <-ch; s.Version != 1 {
		t.Fatalf("first state version %d", s.Version)
	}
	a.apply(r, tenHostState(2))
	if s := <-ch; s.Version != 2 {
		t.Fatalf("next state version %d", s.Version)
	}
	cancel()
	deadline := time.After(5 * time.Second)
	for {
		select {
		case _, ok := <-ch:
			if !ok {
				return
			}
		case <-deadline:
			t.Fatal("the channel was not closed when ctx ended")
		}
	}
}

func TestReportChecksItsInput(t *testing.T) {
	a, r := testAgent(t)
	a.batcher = newBatcher(a.names, 64, a.id, "", 1000, time.Hour, func(string, []byte, int) {})
	a.apply(r, tenHostState(1))
	h, err := a.pickFrom(r, "", false)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Report(h, 0, -time.Millisecond); err == nil {
		t.Fatal("a negative latency was taken")
	}
	if err := a.Report(Host{IP: "10.0.0.256", Port: 80, Modid: 1, Cmdid: 1}, 0, time.Millisecond); err == nil {
		t.Fatal("a bad address was taken")
	}
	if err := a.Report(h, 0, 3*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	if ph := r.model.byKey[h.String()]; ph.inflight != 0 || ph.latencyMs != 3 {
		t.Fatalf("feedback not applied: inflight %d latency %v", ph.inflight, ph.latencyMs)
	}
	if a.batcher.pending() != 1 {
		t.Fatalf("%d reports buffered", a.batcher.pending())
	}
}

func TestRouteStateRoundTrip(t *testing.T) {
	s := tenHostState(9)
	s.Strategy = StrategyHash
	s.Hosts[0].Zone, s.Hosts[1].TrialAgent, s.Hosts[1].State = "z1", "agent-b", StateProbing
	got, err := DecodeRouteState(encodeRouteState(s))
	if err != nil {
		t.Fatal(err)
	}
	if got.Version != 9 || got.Strategy != StrategyHash || got.Hosts[0].Zone != "z1" || got.Hosts[1].TrialAgent != "agent-b" || got.Hosts[9].PickWeight != 190 {
		t.Fatalf("round trip: %+v", got)
	}
}

func TestIsIPv4(t *testing.T) {
	for _, s := range []string{"0.0.0.0", "255.255.255.255", "10.0.0.1", "1.2.3", "1.2.3.4.5", "01.2.3.4", "256.1.1.1", "1.2.3.04", "a.b.c.d", "", "1..2.3", "1.2.3.4 ", "199.249.250.9", "1000.1.1.1", "1.2.3.-1", "٣.1.1.1"} {
		if isIPv4(s) != ipv4Pattern.MatchString(s) {
			t.Errorf("%q: isIPv4 %v, pattern %v", s, isIPv4(s), ipv4Pattern.MatchString(s))
		}
	}
}

// TestVersionsStartAgainWhenTheBucketLostTheState: a server back on a fresh
// store publishes the route from version 1 again; the agent takes it once the
// bucket shows the state it held is gone, and reads the bucket when a lower
// version comes published later than the one it holds.
func TestVersionsStartAgainWhenTheBucketLostTheState(t *testing.T) {
	a, r := testAgent(t)
	reads := make(chan *followed, 4)
	a.readRoute = func(r *followed) { reads <- r }
	held := tenHostState(7)
	a.apply(r, held)
	// a late message: lower version, published earlier: ignored, no read
	late := tenHostState(3)
	late.Ts = held.Ts - 1
	a.apply(r, late)
	if r.state.Version != 7 || len(reads) != 0 {
		t.Fatalf("a late message: version %d, %d reads", r.state.Version, len(reads))
	}
	// a lower version published later: ignored, and the bucket is read (once per interval)
	restarted := tenHostState(1)
	restarted.Ts = held.Ts + 1000
	restarted.Hosts = restarted.Hosts[:3]
	a.apply(r, restarted)
	a.apply(r, restarted)
	select {
	case <-reads:
	case <-time.After(5 * time.Second):
		t.Fatal("no bucket read after a lower version published later")
	}
	if r.state.Version != 7 || len(reads) != 0 {
		t.Fatalf("version %d, %d more reads", r.state.Version, len(reads))
	}
	// a stale replica (older in both) is no reset
	a.stored(r, encodeRouteState(late), true)
	if r.versionReset || a.counters.versionResets.Load() != 0 {
		t.Fatal("a stale replica's read reset the versions")
	}
	// the bucket has no state any more: the versions started again; the held state keeps serving
	a.stored(r, nil, false)
	if !r.versionReset || a.counters.versionResets.Load() != 1 || r.state.Version != 7 {
		t.Fatalf("after the bucket lost the state: reset %v, %d resets, version %d", r.versionReset, a.counters.versionResets.Load(), r.state.Version)
	}
	if _, err := a.pickFrom(r, "", false); err != nil {
		t.Fatalf("picking from the held state: %v", err)
	}
	a.apply(r, restarted)
	if r.state.Version != 1 || len(r.model.hosts) != 3 || r.versionReset {
		t.Fatalf("the restarted route was not taken: version %d, %d hosts, reset %v", r.state.Version, len(r.model.hosts), r.versionReset)
	}
	// from there on, versions never go backwards again
	a.apply(r, tenHostState(0))
	if r.state.Version != 1 {
		t.Fatalf("version %d after an older one", r.state.Version)
	}
}

func TestReportAttemptMarksRetriesAndHedges(t *testing.T) {
	a, r := testAgent(t)
	var batches [][]byte
	a.batcher = newBatcher(a.names, 64, a.id, "", 1000, time.Hour, func(_ string, d []byte, _ int) { batches = append(batches, d) })
	a.apply(r, tenHostState(1))
	h, _ := a.pickFrom(r, "", false)
	if err := a.ReportAttempt(h, RetcodeOverloaded, time.Millisecond, -1, 1, AttemptFirst); err != nil {
		t.Fatal(err)
	}
	if err := a.ReportAttempt(h, 0, time.Millisecond, -1, 2, AttemptRetry); err != nil {
		t.Fatal(err)
	}
	if err := a.ReportAttempt(h, 0, time.Millisecond, 0.5, 3, AttemptHedge); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []struct {
		attempt int
		kind    AttemptKind
	}{{0, AttemptRetry}, {256, AttemptHedge}, {2, AttemptKind(3)}} {
		if err := a.ReportAttempt(h, 0, time.Millisecond, -1, bad.attempt, bad.kind); err == nil {
			t.Fatalf("attempt %d kind %d taken", bad.attempt, bad.kind)
		}
	}
	a.batcher.flush()
	if len(batches) != 1 {
		t.Fatalf("%d batches", len(batches))
	}
	b, err := DecodeReportBatch(batches[0])
	if err != nil {
		t.Fatal(err)
	}
	want := []AttemptMark{{1, 2, AttemptRetry}, {2, 3, AttemptHedge}}
	if len(b.Reports) != 3 || b.Reports[0].Retcode != RetcodeOverloaded || len(b.Attempts) != 2 || b.Attempts[0] != want[0] || b.Attempts[1] != want[1] {
		t.Fatalf("batch %+v", b)
	}
}

func TestRouteExposesTheCallPolicy(t *testing.T) {
	a, r := testAgent(t)
	s := tenHostState(2)
	budget, delay, shed := 0.2, 35.5, 0.25
	s.RetryBudget, s.HedgeDelayMs, s.Shed = &budget, &delay, &shed
	a.onMessage(r, encodeRouteState(s), "lars.route.1.1")
	got, err := a.Route(context.Background(), 1, 1)
	if err != nil {
		t.Fatal(err)
	}
	if got.RetryBudget == nil || *got.RetryBudget != 0.2 || got.HedgeDelayMs == nil || *got.HedgeDelayMs != 35.5 || got.Shed == nil || *got.Shed != 0.25 || got.RetryFloor != nil || got.HedgeBudget != nil {
		t.Fatalf("call policy of the route: %+v", got)
	}
}
