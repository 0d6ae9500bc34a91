package lars

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
)

// Tests against a real nats-server and route node, started by
// test/integration/go-sdk.test.ts, which names them in the environment:
//
//	LARS_TEST_NATS_URL    the server
//	LARS_TEST_PREFIX      the cluster's prefix
//	LARS_TEST_PARTITIONS  its partition count
//	LARS_TEST_ROUTE       modid,cmdid of a registered route (swrr) whose hosts may be failed
//	LARS_TEST_MIXED       modid,cmdid of a route the TypeScript agent picks from too
//
// Without them these tests are skipped (`go test ./...` alone runs the
// conformance and unit tests).

func liveEnv(t *testing.T) (Options, [2]uint32, [2]uint32) {
	url := os.Getenv("LARS_TEST_NATS_URL")
	if url == "" {
		t.Skip("no LARS_TEST_NATS_URL: run by test/integration/go-sdk.test.ts")
	}
	parts, _ := strconv.Atoi(os.Getenv("LARS_TEST_PARTITIONS"))
	route := func(name string) [2]uint32 {
		p := strings.Split(os.Getenv(name), ",")
		if len(p) != 2 {
			t.Fatalf("%s must be modid,cmdid", name)
		}
		m, _ := strconv.ParseUint(p[0], 10, 32)
		c, _ := strconv.ParseUint(p[1], 10, 32)
		return [2]uint32{uint32(m), uint32(c)}
	}
	return Options{Servers: url, Prefix: os.Getenv("LARS_TEST_PREFIX"), Partitions: parts, BatchMaxDelay: 5 * time.Millisecond}, route("LARS_TEST_ROUTE"), route("LARS_TEST_MIXED")
}

// waitUntil polls check until it holds or the deadline passes.
func waitUntil(t *testing.T, what string, timeout time.Duration, check func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !check() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestLiveFailingHostLeavesPicks(t *testing.T) {
	opts, route, _ := liveEnv(t)
	opts.Strategy = StrategySwrr
	opts.AgentID = "go-live-" + randomID(3)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	a, err := Connect(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close(context.Background())
	first, err := a.Route(ctx, route[0], route[1])
	if err != nil {
		t.Fatal(err)
	}
	if len(first.Hosts) < 2 {
		t.Fatalf("route has %d hosts", len(first.Hosts))
	}
	updates, err := a.Watch(ctx, route[0], route[1])
	if err != nil {
		t.Fatal(err)
	}
	bad := first.Hosts[0]
	// every call to the first host fails, every other succeeds: the node ejects it, the agent stops picking it
	start := time.Now()
	var ejectedAt time.Time
	var updated RouteState
	for ejectedAt.IsZero() && time.Since(start) < 10*time.Second {
		h, err := a.GetHost(ctx, route[0], route[1])
		if err != nil {
			t.Fatal(err)
		}
		rc := int32(0)
		if h.IP == bad.IP && h.Port == bad.Port {
			rc = 1
		}
		if err := a.Report(h, rc, 2*time.Millisecond); err != nil {
			t.Fatal(err)
		}
		select {
		case s := <-updates:
			for _, x := range s.Hosts {
				if x.IP == bad.IP && x.Port == bad.Port && x.PickWeight == 0 {
					ejectedAt, updated = time.Now(), s
				}
			}
		default:
			time.Sleep(time.Millisecond)
		}
	}
	if ejectedAt.IsZero() {
		t.Fatalf("no route update ejected %s:%d within 10s", bad.IP, bad.Port)
	}
	if updated.Version <= first.Version {
		t.Fatalf("update version %d is not above %d", updated.Version, first.Version)
	}
	for i := 0; i < 50; i++ {
		h, err := a.GetHost(ctx, route[0], route[1])
		if err != nil {
			t.Fatal(err)
		}
		if h.IP == bad.IP && h.Port == bad.Port {
			t.Fatalf("ejected host picked after the update of version %d", updated.Version)
		}
		_ = a.Report(h, 0, time.Millisecond)
	}
	if err := a.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	st := a.Stats()
	if st.AckedReports == 0 || st.AckedReports != st.Reports || st.DroppedReports != 0 {
		t.Fatalf("reports %d, acknowledged %d, dropped %d", st.Reports, st.AckedReports, st.DroppedReports)
	}
	fmt.Printf("GO_LIVE %s\n", mustJSON(map[string]any{"agent": a.ID(), "reports": st.Reports, "ejected_ms": ejectedAt.Sub(start).Milliseconds(), "version": updated.Version}))
}

// TestLiveMixedSwrr prints the Go agent's view of the mixed route and its swrr picks from a seeded start, for the TypeScript side to compare.
func TestLiveMixedSwrr(t *testing.T) {
	opts, _, mixed := liveEnv(t)
	opts.Strategy = StrategySwrr
	seed, _ := strconv.ParseUint(os.Getenv("LARS_TEST_SEED"), 10, 32)
	opts.Random = func() Random { return SeededRandom(uint32(seed)) }
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	a, err := Connect(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close(context.Background())
	s, err := a.Route(ctx, mixed[0], mixed[1])
	if err != nil {
		t.Fatal(err)
	}
	picks := make([]string, 0, 40)
	for i := 0; i < 40; i++ {
		h, err := a.GetHost(ctx, mixed[0], mixed[1])
		if err != nil {
			t.Fatal(err)
		}
		picks = append(picks, h.String())
	}
	fmt.Printf("GO_MIXED %s\n", mustJSON(map[string]any{"version": s.Version, "picks": picks}))
}

func mustJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// reportSteadily makes 12 reports every 5ms on a until stop is closed.
func reportSteadily(t *testing.T, a *Agent, stop, stopped chan struct{}) {
	defer close(stopped)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	k := 0
	for {
		select {
		case <-stop:
			return
		case <-tick.C:
		}
		for i := 0; i < 12; i++ {
			k++
			h := Host{IP: fmt.Sprintf("10.0.0.%d", 1+k%2), Port: 8000, Modid: uint32(1 + k%3), Cmdid: 1}
			rc := int32(0)
			if k%7 == 0 {
				rc = 1
			}
			if err := a.Report(h, rc, time.Duration(1+k%13)*time.Millisecond); err != nil {
				t.Error(err)
				return
			}
		}
	}
}

// TestLiveOutage reports steadily from two agents, one on its own
// connection and one on a connection the caller opened and passed in
// (Options.Conn), while the test driver kills the nats-server and starts it
// again on its store (LARS_TEST_OUTAGE set): every report made is
// acknowledged in the end, none dropped, the batches acknowledged around the
// outage are published once more to confirm them, and picks go on from the
// cache while the server is away. It prints GO_READY once acks flow,
// GO_DISCONNECTED when it lost the server, and GO_OUTAGE with its counts at
// the end.
func TestLiveOutage(t *testing.T) {
	if os.Getenv("LARS_TEST_OUTAGE") == "" {
		t.Skip("no LARS_TEST_OUTAGE: run by test/integration/go-sdk.test.ts")
	}
	opts, _, _ := liveEnv(t)
	opts.BatchMaxReports = 50
	opts.BatchMaxDelay = 10 * time.Millisecond
	opts.AckTimeout = 2 * time.Second
	opts.ConfirmDelay = 300 * time.Millisecond
	ctx := context.Background()
	own := opts
	own.AgentID = "go-outage"
	a, err := Connect(ctx, own)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close(ctx)
	var callerReconnects atomic.Int32
	nc, err := nats.Connect(opts.Servers, nats.MaxReconnects(-1), nats.ReconnectWait(250*time.Millisecond), nats.ReconnectHandler(func(*nats.Conn) { callerReconnects.Add(1) }))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	shared := opts
	shared.AgentID = "go-outage-shared"
	shared.Conn = nc
	b, err := Connect(ctx, shared)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close(ctx)
	agents := []*Agent{a, b}
	stop := make(chan struct{})
	var done []chan struct{}
	for _, x := range agents {
		stopped := make(chan struct{})
		done = append(done, stopped)
		go reportSteadily(t, x, stop, stopped)
	}
	// a route followed before the outage: its state arrives on its subject (no route node here)
	if _, err := a.route(9, 9); err != nil {
		t.Fatal(err)
	}
	if err := a.Conn().Flush(); err != nil {
		t.Fatal(err)
	}
	s := tenHostState(3)
	s.Modid, s.Cmdid = 9, 9
	if err := a.Conn().Publish(a.names.route(9, 9), encodeRouteState(s)); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "route 9.9 loaded", 10*time.Second, func() bool {
		_, err := a.GetHost(ctx, 9, 9)
		return err == nil
	})
	for _, x := range agents {
		waitUntil(t, "steady acked traffic", 20*time.Second, func() bool { return x.Stats().AckedBatches >= 20 })
	}
	fmt.Println("GO_READY")
	waitUntil(t, "the disconnect", 20*time.Second, func() bool { return !a.IsConnected() })
	fmt.Println("GO_DISCONNECTED")
	// NATS away: picks go on from the cache
	for i := 0; i < 20; i++ {
		if _, err := a.GetHost(ctx, 9, 9); err != nil {
			t.Fatalf("pick while NATS is away: %v", err)
		}
	}
	before := a.Stats().Reports
	waitUntil(t, "the reconnect", 60*time.Second, func() bool { return a.IsConnected() && b.IsConnected() })
	if a.Stats().Reports <= before {
		t.Fatal("no reports made during the outage")
	}
	waitUntil(t, "the caller's reconnect handler called (kept by the agent)", 10*time.Second, func() bool { return callerReconnects.Load() > 0 })
	for _, x := range agents {
		acked := x.Stats().AckedBatches
		waitUntil(t, "acks after the restart", 30*time.Second, func() bool { return x.Stats().AckedBatches >= acked+20 })
		waitUntil(t, "the batches acknowledged around the outage confirmed", 30*time.Second, func() bool { return x.Stats().ConfirmedBatches > 0 })
	}
	close(stop)
	out := map[string]any{}
	for i, x := range agents {
		<-done[i]
		fctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		err := x.Flush(fctx)
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		st := x.Stats()
		if st.DroppedReports != 0 || st.PendingReports != 0 || st.AckedBatches != st.Batches || st.AckedReports != st.Reports {
			t.Fatalf("%s after the outage: %+v", x.ID(), st)
		}
		out[x.ID()] = map[string]any{"reports": st.Reports, "batches": st.Batches, "retried": st.RetriedBatches, "confirmed": st.ConfirmedBatches}
	}
	if err := b.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if nc.IsClosed() {
		t.Fatal("closing the agent closed the caller's connection")
	}
	fmt.Printf("GO_OUTAGE %s\n", mustJSON(out))
}

// TestLiveCoreDelivery reports with ReportDeliveryCore (LARS_TEST_CORE
// set): plain publishes, never acknowledged, in the reports stream all the
// same; Flush waits for the server to have them.
func TestLiveCoreDelivery(t *testing.T) {
	if os.Getenv("LARS_TEST_CORE") == "" {
		t.Skip("no LARS_TEST_CORE: run by test/integration/go-sdk.test.ts")
	}
	opts, _, _ := liveEnv(t)
	opts.AgentID = "go-core-" + randomID(3)
	opts.ReportDelivery = ReportDeliveryCore
	opts.BatchMaxReports = 10
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	a, err := Connect(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close(context.Background())
	for _, r := range scriptedReports() {
		if err := a.Report(r.host, r.retcode, r.latency); err != nil {
			t.Fatal(err)
		}
	}
	if err := a.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	st := a.Stats()
	if st.AckedBatches != 0 || st.Batches != 3 || st.PendingReports != 0 || st.DroppedReports != 0 {
		t.Fatalf("core delivery: %+v", st)
	}
	fmt.Printf("GO_CORE %s\n", mustJSON(map[string]any{"agent": a.ID(), "reports": st.Reports}))
}

// ScriptedReports is the fixed list of reports TestLiveScriptedReports makes
// (test/integration/go-sdk.test.ts makes the same with a TypeScript agent
// and compares the rows the sink stores for each).
func scriptedReports() []struct {
	host    Host
	retcode int32
	latency time.Duration
} {
	out := make([]struct {
		host    Host
		retcode int32
		latency time.Duration
	}, 30)
	for k := range out {
		out[k].host = Host{IP: fmt.Sprintf("10.9.0.%d", 1+k%3), Port: 8000 + k%2, Modid: 41, Cmdid: 3}
		if k%5 == 0 {
			out[k].retcode = 500
		}
		out[k].latency = time.Duration(k) * 1250 * time.Microsecond
	}
	return out
}

func TestLiveScriptedReports(t *testing.T) {
	if os.Getenv("LARS_TEST_SCRIPT") == "" {
		t.Skip("no LARS_TEST_SCRIPT: run by test/integration/go-sdk.test.ts")
	}
	opts, _, _ := liveEnv(t)
	opts.AgentID = os.Getenv("LARS_TEST_AGENT_ID")
	opts.Zone = "z1"
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	a, err := Connect(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close(context.Background())
	for _, r := range scriptedReports() {
		if err := a.Report(r.host, r.retcode, r.latency); err != nil {
			t.Fatal(err)
		}
	}
	if err := a.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	fmt.Printf("GO_SCRIPT %s\n", mustJSON(map[string]any{"agent": a.ID(), "reports": a.Stats().AckedReports}))
}

// TestLiveRegister registers a host on route 41.5 (LARS_TEST_REGISTER set):
// it joins the route, stays past its TTL on heartbeats, and leaves on Stop.
func TestLiveRegister(t *testing.T) {
	if os.Getenv("LARS_TEST_REGISTER") == "" {
		t.Skip("no LARS_TEST_REGISTER: run by test/integration/go-sdk.test.ts")
	}
	opts, _, _ := liveEnv(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	a, err := Connect(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close(context.Background())
	const ttl = 2 * time.Second
	reg, err := a.Register(ctx, Registration{Modid: 41, Cmdid: 5, IP: "127.0.6.9", Port: 7600, TTL: ttl, DrainTime: 300 * time.Millisecond, Instance: "go-live"})
	if err != nil {
		t.Fatal(err)
	}
	states, err := a.Watch(ctx, 41, 5)
	if err != nil {
		t.Fatal(err)
	}
	pickable := func(s RouteState) bool {
		for _, h := range s.Hosts {
			if h.IP == "127.0.6.9" && h.Port == 7600 && h.PickWeight > 0 {
				return true
			}
		}
		return false
	}
	waitState := func(what string, want bool) RouteState {
		deadline := time.After(15 * time.Second)
		for {
			select {
			case s, ok := <-states:
				if !ok {
					t.Fatalf("watch closed waiting for %s", what)
				}
				if pickable(s) == want {
					return s
				}
			case <-deadline:
				t.Fatalf("timed out waiting for %s", what)
			}
		}
	}
	joined := waitState("the registered host in the route", true)
	// heartbeats keep it there past its TTL: no state without it for 1.5 TTL
	hold := time.After(ttl + ttl/2)
	for held := false; !held; {
		select {
		case s := <-states:
			if !pickable(s) {
				t.Fatalf("the host left its route while heartbeating (version %d)", s.Version)
			}
		case <-hold:
			held = true
		}
	}
	if err := reg.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	left := waitState("the host leaving the route", false)
	if left.Version <= joined.Version {
		t.Fatalf("leaving version %d not above %d", left.Version, joined.Version)
	}
	fmt.Printf("GO_REGISTER %s\n", mustJSON(map[string]any{"joined": joined.Version, "left": left.Version}))
}

// TestLiveVersionsStartAgain (LARS_TEST_VERSIONS set): route 9.8 is held at
// version 5 from the routes bucket; the bucket loses it (a server back on a
// fresh store) and the route comes again from version 1, published later.
// The agent serves version 5 until a lower version published later makes it
// read the bucket, finds the state gone, and takes the next state whatever
// its version.
func TestLiveVersionsStartAgain(t *testing.T) {
	if os.Getenv("LARS_TEST_VERSIONS") == "" {
		t.Skip("no LARS_TEST_VERSIONS: run by test/integration/go-sdk.test.ts")
	}
	opts, _, _ := liveEnv(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	a, err := Connect(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close(context.Background())
	kv, err := a.routesKV()
	if err != nil {
		t.Fatal(err)
	}
	held := tenHostState(5)
	held.Modid, held.Cmdid, held.Ts = 9, 8, float64(time.Now().UnixMilli())
	key := a.names.routeKey(9, 8)
	if _, err := kv.Put(key, encodeRouteState(held)); err != nil {
		t.Fatal(err)
	}
	if s, err := a.Route(ctx, 9, 8); err != nil || s.Version != 5 {
		t.Fatalf("route 9.8 from the bucket: %v %v", s, err)
	}
	if err := kv.Delete(key); err != nil {
		t.Fatal(err)
	}
	publish := func(version uint64, hosts int) {
		s := tenHostState(version)
		s.Modid, s.Cmdid, s.Ts = 9, 8, held.Ts+float64(version)*1000
		s.Hosts = s.Hosts[:hosts]
		if err := a.Conn().Publish(a.names.route(9, 8), encodeRouteState(s)); err != nil {
			t.Fatal(err)
		}
	}
	publish(1, 3)
	waitUntil(t, "the bucket read finding the state gone", 10*time.Second, func() bool { return a.Stats().VersionResets == 1 })
	if s, _ := a.Route(ctx, 9, 8); s.Version != 5 {
		t.Fatalf("version %d served before the next state", s.Version)
	}
	publish(2, 4)
	waitUntil(t, "the route's new versions taken", 10*time.Second, func() bool {
		s, _ := a.Route(ctx, 9, 8)
		return s.Version == 2 && len(s.Hosts) == 4
	})
	fmt.Printf("GO_VERSIONS %s\n", mustJSON(map[string]any{"resets": a.Stats().VersionResets}))
}

// overloadedErr is a host's refusal of a call as overloaded (retcode -4).
type overloadedErr struct{}

func (overloadedErr) Error() string  { return "overloaded" }
func (overloadedErr) Retcode() int32 { return RetcodeOverloaded }

// TestLiveShedding (LARS_TEST_SHED=modid,cmdid of a route of two hosts):
// every call of the Go agent is refused by its host as overloaded; the
// route node, counting those reports, publishes that the route sheds, and
// the agent's Call then refuses most new calls at once (CallStopShed) without
// calling any host.
func TestLiveShedding(t *testing.T) {
	spec := os.Getenv("LARS_TEST_SHED")
	if spec == "" {
		t.Skip("no LARS_TEST_SHED: run by test/integration/go-sdk.test.ts")
	}
	opts, _, _ := liveEnv(t)
	var modid, cmdid uint32
	if _, err := fmt.Sscanf(spec, "%d,%d", &modid, &cmdid); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	a, err := Connect(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close(context.Background())
	refuse := func(context.Context, Host, AttemptInfo) error { return overloadedErr{} }
	one := CallOptions{MaxAttempts: 1}
	var shed float64
	waitUntil(t, "the route shedding", 20*time.Second, func() bool {
		err := a.Call(ctx, modid, cmdid, refuse, one)
		if stopOf(err) != CallStopAttempts && stopOf(err) != CallStopShed {
			t.Fatalf("an overloaded call: %v", err)
		}
		if s, err := a.Route(ctx, modid, cmdid); err == nil && s.Shed != nil && *s.Shed > 0.5 {
			shed = *s.Shed
			return true
		}
		return false
	})
	before := a.Stats().FirstAttempts
	refused := 0
	for i := 0; i < 100; i++ {
		if stopOf(a.Call(ctx, modid, cmdid, refuse, one)) == CallStopShed {
			refused++
		}
	}
	made := a.Stats().FirstAttempts - before
	if refused < 50 || int(made)+refused != 100 {
		t.Fatalf("shedding %.2f: %d of 100 calls refused, %d made", shed, refused, made)
	}
	fmt.Printf("GO_SHED %s\n", mustJSON(map[string]any{"shed": shed, "refused": refused}))
}
