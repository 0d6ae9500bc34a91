package lars

import (
	"context"
	"fmt"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
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

// BenchmarkLiveRouteUpdateCPU: the process CPU (user + system) per route
// update of 10 hosts received from a real nats-server and applied, one
// host's weight changed each time, 1000 updates a second (the publisher
// shares the process: its publish is counted too). Skipped without
// LARS_BENCH_NATS_URL.
func BenchmarkLiveRouteUpdateCPU(b *testing.B) {
	url := os.Getenv("LARS_BENCH_NATS_URL")
	if url == "" {
		b.Skip("no LARS_BENCH_NATS_URL: run by npm run bench -- go")
	}
	ctx := context.Background()
	prefix := os.Getenv("LARS_BENCH_PREFIX")
	a, err := Connect(ctx, Options{Servers: url, Prefix: prefix, LoadTimeout: 100 * time.Millisecond})
	if err != nil {
		b.Fatal(err)
	}
	defer a.Close(ctx)
	pub, err := nats.Connect(url)
	if err != nil {
		b.Fatal(err)
	}
	defer pub.Close()
	r, err := a.route(1, 1)
	if err != nil {
		b.Fatal(err)
	}
	subject := a.names.route(1, 1)
	version := uint64(0)
	publish := func(n int) {
		tick := time.NewTicker(time.Millisecond)
		defer tick.Stop()
		for i := 0; i < n; i++ {
			<-tick.C
			version++
			s := tenHostState(version)
			s.Hosts[version%10].PickWeight = float64(50 + version%50)
			if err := pub.Publish(subject, encodeRouteState(s)); err != nil {
				b.Fatal(err)
			}
		}
		_ = pub.Flush()
		want := version
		waitBench(b, func() bool { r.mu.Lock(); defer r.mu.Unlock(); return r.state != nil && r.state.Version == want })
	}
	publish(200) // warm up
	b.ResetTimer()
	start := cpuTime()
	before := a.counters.updates.Load()
	publish(b.N)
	used := cpuTime() - start
	b.StopTimer()
	applied := a.counters.updates.Load() - before
	if applied != uint64(b.N) {
		b.Fatalf("%d of %d updates applied", applied, b.N)
	}
	b.ReportMetric(float64(used.Microseconds())/float64(b.N), "cpu_us/update")
}

func waitBench(b *testing.B, check func() bool) {
	deadline := time.Now().Add(30 * time.Second)
	for !check() {
		if time.Now().After(deadline) {
			b.Fatal("timed out waiting for the updates")
		}
		time.Sleep(time.Millisecond)
	}
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
