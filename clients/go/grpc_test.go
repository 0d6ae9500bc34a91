package lars

import (
	"context"
	"errors"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
)

// gRPC through the lars:/// resolver and the lars balancer, against real
// grpc-go servers on loopback (the health service) and an agent fed route
// states directly.

type grpcTestServer struct {
	ip    string
	port  int
	calls atomic.Int64
	fail  atomic.Int32 // a status code every call ends with (0: none)
	srv   *grpc.Server
}

func startGRPCServer(t *testing.T) *grpcTestServer {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &grpcTestServer{}
	s.srv = grpc.NewServer(grpc.UnaryInterceptor(func(ctx context.Context, req interface{}, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (interface{}, error) {
		s.calls.Add(1)
		if c := s.fail.Load(); c != 0 {
			return nil, status.Error(codes.Code(c), "failing on purpose")
		}
		return h(ctx, req)
	}))
	healthpb.RegisterHealthServer(s.srv, health.NewServer())
	go func() { _ = s.srv.Serve(lis) }()
	t.Cleanup(s.srv.Stop)
	ip, port, _ := net.SplitHostPort(lis.Addr().String())
	s.ip = ip
	s.port, _ = strconv.Atoi(port)
	return s
}

// reportSink collects the report batches an agent makes.
type reportSink struct {
	mu      sync.Mutex
	reports []sunkReport
}

type sunkReport struct {
	port      int
	retcode   int32
	latencyMs float64
}

func (s *reportSink) take(t *testing.T) func(string, []byte, int) {
	return func(_ string, d []byte, _ int) {
		b, err := DecodeReportBatch(d)
		if err != nil {
			t.Error(err)
			return
		}
		s.mu.Lock()
		for _, r := range b.Reports {
			s.reports = append(s.reports, sunkReport{b.Hosts[r.HostIndex].Port, r.Retcode, r.LatencyMs})
		}
		s.mu.Unlock()
	}
}

func (s *reportSink) byHost() map[int]map[int32]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[int]map[int32]int{}
	for _, r := range s.reports {
		if out[r.port] == nil {
			out[r.port] = map[int32]int{}
		}
		out[r.port][r.retcode]++
	}
	return out
}

func grpcRouteState(version uint64, servers []*grpcTestServer, weights []float64) *RouteState {
	s := &RouteState{V: 1, Sender: "node-1", Modid: 1, Cmdid: 1, Version: version, Ts: 1764115200000, Profile: "default", Strategy: StrategySwrr}
	for i, srv := range servers {
		h := RouteHost{IP: srv.ip, Port: srv.port, Weight: 100, State: StateHealthy, Reason: "registered", PickWeight: weights[i]}
		if weights[i] == 0 {
			h.State, h.Reason = StateOverloaded, "ejected"
		}
		s.Hosts = append(s.Hosts, h)
	}
	return s
}

func check(t *testing.T, client healthpb.HealthClient, service string) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err := client.Check(ctx, &healthpb.HealthCheckRequest{Service: service})
	return err
}

func TestGRPCCallsFollowTheRouteAndReport(t *testing.T) {
	a, r := testAgent(t)
	sink := &reportSink{}
	a.batcher = newBatcher(a.names, 64, a.id, "", 100000, time.Hour, sink.take(t))
	servers := []*grpcTestServer{startGRPCServer(t), startGRPCServer(t), startGRPCServer(t)}
	a.apply(r, grpcRouteState(1, servers, []float64{100, 200, 300}))

	conn, err := grpc.Dial("lars:///1.1", grpc.WithInsecure(), GRPCDialOption(a, GRPCOptions{}))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	client := healthpb.NewHealthClient(conn)

	// until every host has answered once (its connection is up), so that no pick below waits for one
	waitUntil(t, "every host connected", 10*time.Second, func() bool {
		if err := check(t, client, ""); err != nil {
			t.Fatal(err)
		}
		return servers[0].calls.Load() > 0 && servers[1].calls.Load() > 0 && servers[2].calls.Load() > 0
	})
	before := make([]int64, 3)
	for i, s := range servers {
		before[i] = s.calls.Load()
	}
	// swrr with pick weights 1:2:3 is exact over every 6 picks
	for i := 0; i < 60; i++ {
		if err := check(t, client, ""); err != nil {
			t.Fatal(err)
		}
	}
	for i, want := range []int64{10, 20, 30} {
		if got := servers[i].calls.Load() - before[i]; got != want {
			t.Fatalf("host %d got %d of 60 calls, want %d", i, got, want)
		}
	}

	// outcomes: a failing status is the retcode, a status that is no failure (NOT_FOUND) is a success
	servers[2].fail.Store(int32(codes.Internal))
	for i := 0; i < 6; i++ {
		err := check(t, client, "no-such-service")
		if c := status.Code(err); c != codes.NotFound && c != codes.Internal {
			t.Fatalf("call %d: %v", i, err)
		}
	}
	servers[2].fail.Store(0)

	// host 2 ejected in a new route state: no more calls to it
	a.apply(r, grpcRouteState(2, servers, []float64{100, 100, 0}))
	ejected := servers[2].calls.Load()
	for i := 0; i < 40; i++ {
		if err := check(t, client, ""); err != nil {
			t.Fatal(err)
		}
	}
	if got := servers[2].calls.Load() - ejected; got != 0 {
		t.Fatalf("the ejected host got %d calls", got)
	}
	if servers[0].calls.Load()+servers[1].calls.Load() < 40 {
		t.Fatal("calls went missing")
	}

	a.batcher.flush()
	got := sink.byHost()
	if got[servers[2].port][int32(codes.Internal)] != 3 {
		t.Fatalf("reports of the failing host: %v", got[servers[2].port])
	}
	total := 0
	for port, rc := range got {
		for code, n := range rc {
			total += n
			if code != 0 && !(port == servers[2].port && code == int32(codes.Internal)) {
				t.Fatalf("unexpected retcode %d for port %d: %v", code, port, got)
			}
		}
	}
	var calls int64
	for _, s := range servers {
		calls += s.calls.Load()
	}
	if int64(total) != calls {
		t.Fatalf("%d reports for %d calls", total, calls)
	}
	sink.mu.Lock()
	var latency float64
	for _, rep := range sink.reports {
		if rep.latencyMs < 0 {
			t.Errorf("negative latency: %+v", rep)
		}
		latency += rep.latencyMs
	}
	sink.mu.Unlock()
	if latency <= 0 {
		t.Fatal("no latency reported")
	}
}

func TestGRPCUnreachableHostIsAConnectionError(t *testing.T) {
	a, r := testAgent(t)
	sink := &reportSink{}
	a.batcher = newBatcher(a.names, 64, a.id, "", 100000, time.Hour, sink.take(t))
	up := startGRPCServer(t)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	_, port, _ := net.SplitHostPort(lis.Addr().String())
	lis.Close() // nothing listens there now
	down := &grpcTestServer{ip: "127.0.0.1"}
	down.port, _ = strconv.Atoi(port)
	a.apply(r, grpcRouteState(1, []*grpcTestServer{up, down}, []float64{100, 100}))

	conn, err := grpc.Dial("lars:///1/1", grpc.WithInsecure(), GRPCDialOption(a, GRPCOptions{}))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	client := healthpb.NewHealthClient(conn)
	waitUntil(t, "the unreachable host reported", 10*time.Second, func() bool {
		if err := check(t, client, ""); err != nil {
			t.Fatal(err)
		}
		a.batcher.flush()
		return sink.byHost()[down.port][RetcodeConnection] > 0
	})
	if up.calls.Load() == 0 {
		t.Fatal("no call reached the reachable host")
	}
}

func TestGRPCRouteNotLoadedFailsOrWaits(t *testing.T) {
	a, r := testAgent(t)
	sink := &reportSink{}
	a.batcher = newBatcher(a.names, 64, a.id, "", 100000, time.Hour, sink.take(t))
	a.o.LoadTimeout = 50 * time.Millisecond
	conn, err := grpc.Dial("lars:///1.1", grpc.WithInsecure(), GRPCDialOption(a, GRPCOptions{}))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	// the route is followed but never loads: its calls fail instead of waiting for their deadline
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err = healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{})
	if status.Code(err) != codes.Unavailable {
		t.Fatalf("got %v, want UNAVAILABLE", err)
	}
	// a wait-for-ready call waits for the route instead, and goes out when its state arrives
	srv := startGRPCServer(t)
	done := make(chan error, 1)
	go func() {
		_, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{}, grpc.WaitForReady(true))
		done <- err
	}()
	select {
	case err := <-done:
		t.Fatalf("the wait-for-ready call ended before the route had a host: %v", err)
	case <-time.After(50 * time.Millisecond):
	}
	a.apply(r, grpcRouteState(1, []*grpcTestServer{srv}, []float64{100}))
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if srv.calls.Load() != 1 {
		t.Fatalf("%d calls reached the host", srv.calls.Load())
	}
	a.batcher.flush()
	if got := sink.byHost()[srv.port][0]; got != 1 {
		t.Fatalf("%d successes reported", got)
	}
	if _, err := grpc.Dial("lars:///users", grpc.WithInsecure(), GRPCDialOption(a, GRPCOptions{}), grpc.WithBlock(), grpc.FailOnNonTempDialError(true)); err == nil {
		t.Fatal("a target without a route was accepted")
	}
}

func TestGRPCRetcodes(t *testing.T) {
	def := newGRPCPolicy(GRPCOptions{})
	cases := []struct {
		err  error
		lat  time.Duration
		want int32
	}{
		{nil, time.Millisecond, 0},
		{status.Error(codes.Unavailable, ""), 0, 14},
		{status.Error(codes.DeadlineExceeded, ""), 0, 4},
		{status.Error(codes.ResourceExhausted, ""), 0, 8},
		{status.Error(codes.Internal, ""), 0, 13},
		{status.Error(codes.Unknown, ""), 0, 2},
		{errors.New("not a status"), 0, 2},
		{status.Error(codes.NotFound, ""), 0, 0},
		{status.Error(codes.Canceled, ""), 0, 0},
	}
	for _, c := range cases {
		if got := def.retcode(c.err, c.lat); got != c.want {
			t.Errorf("%v: retcode %d, want %d", c.err, got, c.want)
		}
	}
	p := newGRPCPolicy(GRPCOptions{FailureCodes: []codes.Code{codes.NotFound}, Slow: 10 * time.Millisecond, IgnoreConnectionErrors: true})
	if p.retcode(status.Error(codes.NotFound, ""), 0) != 5 || p.retcode(status.Error(codes.Unavailable, ""), 0) != 0 || p.retcode(nil, 20*time.Millisecond) != RetcodeSlow || p.connRet != 0 {
		t.Fatal("a custom policy is not applied")
	}
	for _, e := range []string{"1.2", "/1.2", "1/2"} {
		if m, c, err := ParseGRPCTarget(e); err != nil || m != 1 || c != 2 {
			t.Errorf("%q: %d %d %v", e, m, c, err)
		}
	}
	for _, e := range []string{"", "1", "a.b", "1.", ".2", "1.2.3"} {
		if _, _, err := ParseGRPCTarget(e); err == nil {
			t.Errorf("%q accepted", e)
		}
	}
}

func TestGRPCClassify(t *testing.T) {
	c := GRPCClassify(GRPCOptions{})
	cases := []struct {
		err  error
		want Classified
	}{
		{status.Error(codes.Unavailable, "away"), Classified{int32(codes.Unavailable), true}},
		{status.Error(codes.ResourceExhausted, "busy"), Classified{RetcodeOverloaded, true}},
		{status.Error(codes.DeadlineExceeded, "late"), Classified{RetcodeTimeout, true}},
		{context.DeadlineExceeded, Classified{RetcodeTimeout, true}},
		{status.Error(codes.Internal, "bug"), Classified{int32(codes.Internal), false}},
		{status.Error(codes.NotFound, "no such user"), Classified{0, false}},
		{errors.New("mine"), Classified{RetcodeError, false}},
	}
	for _, x := range cases {
		if got := c(x.err); got != x.want {
			t.Errorf("%v: %+v, want %+v", x.err, got, x.want)
		}
	}
}
