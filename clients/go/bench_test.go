package lars

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// Benchmarks of the in-process paths (`npm run bench -- go` runs them and
// records the figures): a pick on a route of 10 hosts, the enqueue of a
// report, and applying a route update (decode, check, model).

func benchRoute(b *testing.B, strategyName string) (*Agent, *followed) {
	b.Helper()
	o, err := resolve(Options{Strategy: strategyName, MaxPendingReports: 1 << 30})
	if err != nil {
		b.Fatal(err)
	}
	n, _ := newNames(o.Prefix)
	a := &Agent{o: o, id: o.AgentID, names: n, done: make(chan struct{})}
	a.batcher = newBatcher(n, o.Partitions, a.id, "", o.BatchMaxReports, time.Hour, func(string, []byte, int) {})
	r := &followed{modid: 1, cmdid: 1, loaded: make(chan struct{}), watchers: map[chan RouteState]struct{}{}, nowFn: a.nowMs}
	r.model = newAgentRoute(a.id, o.Strategy, a.newStrategy(o.Random(), a.nowMs))
	r.model.modid, r.model.cmdid, r.model.owner = 1, 1, r
	a.routes.Store(routeKey(1, 1), r)
	a.apply(r, tenHostState(1))
	return a, r
}

func tenHostState(version uint64) *RouteState {
	s := &RouteState{V: 1, Sender: "node-1", Modid: 1, Cmdid: 1, Version: version, Ts: 1764115200000, Profile: "default"}
	for i := 0; i < 10; i++ {
		s.Hosts = append(s.Hosts, RouteHost{IP: fmt.Sprintf("10.0.0.%d", i+1), Port: 8000, Weight: 100, State: StateHealthy, Reason: "registered", PickWeight: float64(100 + 10*i)})
	}
	return s
}

// BenchmarkGetHostSwrr: one goroutine picking (go_gethost_ns).
func BenchmarkGetHostSwrr(b *testing.B) {
	a, r := benchRoute(b, StrategySwrr)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := a.pickFrom(r, "", false); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkGetHostSwrrParallel: GOMAXPROCS×8 goroutines picking from one route (go_gethost_parallel_picks_per_sec).
func BenchmarkGetHostSwrrParallel(b *testing.B) {
	a, r := benchRoute(b, StrategySwrr)
	b.SetParallelism(8)
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := a.pickFrom(r, "", false); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkGetHostP2cEwma: the default strategy, with the clock it reads.
func BenchmarkGetHostP2cEwma(b *testing.B) {
	a, r := benchRoute(b, StrategyP2cEwma)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		h, err := a.pickFrom(r, "", false)
		if err != nil {
			b.Fatal(err)
		}
		_ = a.Report(h, 0, time.Millisecond)
	}
}

// BenchmarkReport: enqueue one report of a picked host (go_report_ns).
func BenchmarkReport(b *testing.B) {
	a, r := benchRoute(b, StrategySwrr)
	h, _ := a.pickFrom(r, "", false)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := a.Report(h, 0, time.Millisecond); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRouteUpdate: a route state of 10 hosts decoded, checked and applied (go_route_update_cpu_us), one host's weight changed each time.
func BenchmarkRouteUpdate(b *testing.B) {
	a, r := benchRoute(b, StrategyP2cEwma)
	states := make([][]byte, 64)
	for i := range states {
		s := tenHostState(uint64(i + 2))
		s.Hosts[i%10].PickWeight = float64(50 + i)
		states[i] = encodeRouteState(s)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		r.mu.Lock()
		r.state.Version = 1
		r.mu.Unlock()
		a.onMessage(r, states[i%len(states)], "lars.route.1.1")
	}
	b.StopTimer()
	if n := a.counters.updates.Load(); n < uint64(b.N) {
		b.Fatalf("%d of %d updates applied (rejects %v)", n, b.N, a.rejects.snapshot())
	}
}

// BenchmarkLiveAckedSmallBatches: acknowledged reports per second in batches
// of 10 over 100 routes, on the server LARS_BENCH_NATS_URL names (with the
// REPORTS stream of LARS_BENCH_PREFIX); skipped without it.
func BenchmarkLiveAckedSmallBatches(b *testing.B) {
	url := os.Getenv("LARS_BENCH_NATS_URL")
	if url == "" {
		b.Skip("no LARS_BENCH_NATS_URL: run by npm run bench -- go")
	}
	ctx := context.Background()
	a, err := Connect(ctx, Options{Servers: url, Prefix: os.Getenv("LARS_BENCH_PREFIX"), BatchMaxReports: 10, PublishWindow: 1000, MaxPendingReports: 1 << 30})
	if err != nil {
		b.Fatal(err)
	}
	defer a.Close(ctx)
	hosts := []Host{{IP: "10.0.0.1", Port: 8000}, {IP: "10.0.0.2", Port: 8000}}
	const total = 200_000
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		start := time.Now()
		for k := 0; k < total; k++ {
			h := hosts[k%2]
			h.Modid, h.Cmdid = uint32(1+k%100), 1
			if err := a.Report(h, 0, time.Millisecond); err != nil {
				b.Fatal(err)
			}
		}
		if err := a.Flush(ctx); err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(total/time.Since(start).Seconds(), "acked_reports/s")
	}
	if st := a.Stats(); st.DroppedReports != 0 {
		b.Fatalf("%d reports dropped", st.DroppedReports)
	}
}

// followEjections: with LARS_BENCH_EJECT set, the next that many updates of
// route 1.1 after version n each eject one host (overloaded, pick weight 0);
// prints, for each, the time from its publish (the state's ts) to the agent
// holding it, and how many of 100 picks then still went to the ejected host.
func followEjections(ctx context.Context, t *testing.T, a *Agent, n uint64) {
	e, _ := strconv.Atoi(os.Getenv("LARS_BENCH_EJECT"))
	if e == 0 {
		return
	}
	states, err := a.Watch(ctx, 1, 1)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Println("GO_EJECT_READY")
	var lags []float64
	picked := 0
	for s := range states {
		if s.Version <= n {
			continue
		}
		lags = append(lags, float64(time.Now().UnixNano())/1e6-s.Ts)
		for _, h := range s.Hosts {
			if h.State != StateOverloaded || h.PickWeight != 0 {
				continue
			}
			for i := 0; i < 100; i++ {
				p, err := a.GetHost(ctx, 1, 1)
				if err != nil {
					t.Fatal(err)
				}
				if p.IP == h.IP && p.Port == h.Port {
					picked++
				}
				a.Release(p)
			}
		}
		if s.Version >= n+uint64(e) {
			fmt.Printf("GO_EJECT %s\n", mustJSON(map[string]any{"lag_ms": lags, "picked": picked}))
			return
		}
	}
	t.Fatal("the watch ended before the last ejection")
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// TestLiveFollowCPU follows route 1.1 on LARS_BENCH_NATS_URL while
// bench/go.ts publishes LARS_BENCH_FOLLOW states of 10 hosts to it, and
// prints the process CPU (user + system) per update between the first and
// the last: the agent's cost of a route update, its NATS client included,
// measured as the TypeScript agent's is (the publisher is another process).
func TestLiveFollowCPU(t *testing.T) {
	n, _ := strconv.Atoi(os.Getenv("LARS_BENCH_FOLLOW"))
	if n == 0 {
		t.Skip("no LARS_BENCH_FOLLOW: run by npm run bench -- go")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	a, err := Connect(ctx, Options{Servers: os.Getenv("LARS_BENCH_NATS_URL"), Prefix: os.Getenv("LARS_BENCH_PREFIX"), LoadTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close(context.Background())
	r, err := a.route(1, 1)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Conn().Flush(); err != nil { // the route subscription is on the server
		t.Fatal(err)
	}
	fmt.Println("GO_FOLLOW_READY")
	version := func() uint64 {
		r.mu.Lock()
		defer r.mu.Unlock()
		if r.state == nil {
			return 0
		}
		return r.state.Version
	}
	// looked at 20 times a second: the harness costs next to nothing beside 1000 updates a second
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	var start time.Duration
	var first uint64
	for range tick.C {
		v := version()
		if first == 0 && v > 0 {
			first, start = a.counters.updates.Load(), cpuTime()
		}
		if v >= uint64(n) {
			used := cpuTime() - start
			updates := a.counters.updates.Load() - first
			fmt.Printf("GO_FOLLOW %s\n", mustJSON(map[string]any{"updates": updates, "cpu_us_per_update": float64(used.Microseconds()) / float64(updates)}))
			followEjections(ctx, t, a, uint64(n))
			return
		}
		if ctx.Err() != nil {
			break
		}
	}
	t.Fatal("timed out before the last update")
}
