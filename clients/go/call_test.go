package lars

import (
	"context"
	"errors"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Call on an agent without a server: retries, hedges, budgets, shedding,
// timeouts, and the reports with their attempt marks.

type batchSink struct {
	mu      sync.Mutex
	batches []*ReportBatch
}

func (s *batchSink) take(t *testing.T) func(string, []byte, int) {
	return func(_ string, d []byte, _ int) {
		b, err := DecodeReportBatch(d)
		if err != nil {
			t.Errorf("batch: %v", err)
			return
		}
		s.mu.Lock()
		s.batches = append(s.batches, b)
		s.mu.Unlock()
	}
}

// reports returns every report made so far as (retcode, attempt mark or nil).
func (s *batchSink) reports() (retcodes []int32, marks []AttemptMark) {
	s.mu.Lock()
	defer s.mu.Unlock()
	base := 0
	for _, b := range s.batches {
		for _, r := range b.Reports {
			retcodes = append(retcodes, r.Retcode)
		}
		for _, m := range b.Attempts {
			m.ReportIndex += base
			marks = append(marks, m)
		}
		base += len(b.Reports)
	}
	return
}

func callAgent(t *testing.T, policy func(*RouteState)) (*Agent, *batchSink) {
	a, r := testAgent(t)
	sink := &batchSink{}
	a.batcher = newBatcher(a.names, 64, a.id, "", 1000, time.Hour, sink.take(t))
	s := tenHostState(1)
	if policy != nil {
		policy(s)
	}
	a.apply(r, s)
	return a, sink
}

func f64(v float64) *float64 { return &v }

func stopOf(err error) CallStop {
	var ce *CallError
	if errors.As(err, &ce) {
		return ce.Reason
	}
	return ""
}

func TestCallRetriesAnotherHostAndMarksTheRetry(t *testing.T) {
	a, sink := callAgent(t, nil)
	var hosts []string
	v, err := CallValue(context.Background(), a, 1, 1, func(ctx context.Context, h Host, info AttemptInfo) (string, error) {
		hosts = append(hosts, h.String())
		if info.Attempt == 1 {
			return "", syscall.ECONNREFUSED
		}
		return "answer", nil
	}, CallOptions{})
	if err != nil || v != "answer" {
		t.Fatalf("call: %q %v", v, err)
	}
	if len(hosts) != 2 || hosts[0] == hosts[1] {
		t.Fatalf("attempts on %v", hosts)
	}
	a.batcher.flush()
	rcs, marks := sink.reports()
	if len(rcs) != 2 || rcs[0] != RetcodeConnection || rcs[1] != 0 || len(marks) != 1 || marks[0] != (AttemptMark{1, 2, AttemptRetry}) {
		t.Fatalf("reports %v marks %v", rcs, marks)
	}
	if st := a.Stats(); st.Calls != 1 || st.FirstAttempts != 1 || st.Retries != 1 {
		t.Fatalf("%+v", st)
	}
}

func TestCallStopsOnAFailureNotToRetry(t *testing.T) {
	a, _ := callAgent(t, nil)
	mine := errors.New("bad request")
	err := a.Call(context.Background(), 1, 1, func(context.Context, Host, AttemptInfo) error { return mine }, CallOptions{})
	var ce *CallError
	if !errors.As(err, &ce) || ce.Reason != CallStopNotRetriable || len(ce.Attempts) != 1 || ce.Attempts[0].Retcode != RetcodeError || !errors.Is(err, mine) {
		t.Fatalf("call: %v", err)
	}
}

func TestCallRetriesOnlyWithinTheBudget(t *testing.T) {
	a, _ := callAgent(t, func(s *RouteState) { s.RetryBudget, s.RetryFloor = f64(0), f64(0) })
	calls := 0
	err := a.Call(context.Background(), 1, 1, func(context.Context, Host, AttemptInfo) error {
		calls++
		return syscall.ECONNRESET
	}, CallOptions{})
	if stopOf(err) != CallStopBudget || calls != 1 {
		t.Fatalf("call: %v after %d attempts", err, calls)
	}
	if a.Stats().CallStops[CallStopBudget] != 1 {
		t.Fatalf("%v", a.Stats().CallStops)
	}
}

func TestCallRefusedWhileTheRouteSheds(t *testing.T) {
	a, _ := callAgent(t, func(s *RouteState) { s.RetryBudget, s.Shed = f64(0.1), f64(1) })
	err := a.Call(context.Background(), 1, 1, func(context.Context, Host, AttemptInfo) error {
		t.Fatal("an attempt while the route sheds every call")
		return nil
	}, CallOptions{})
	if stopOf(err) != CallStopShed {
		t.Fatalf("call: %v", err)
	}
}

func TestCallHedgesAnIdempotentCallAndTheFirstAnswerWins(t *testing.T) {
	a, sink := callAgent(t, func(s *RouteState) { s.RetryBudget, s.HedgeDelayMs, s.HedgeBudget = f64(0.1), f64(20), f64(1) })
	firstCancelled := make(chan struct{})
	v, err := CallValue(context.Background(), a, 1, 1, func(ctx context.Context, h Host, info AttemptInfo) (int, error) {
		if info.Kind == AttemptFirst {
			<-ctx.Done() // no answer: the hedge wins, and this attempt is cancelled
			close(firstCancelled)
			return 0, ctx.Err()
		}
		return info.Attempt, nil
	}, CallOptions{Idempotent: true})
	if err != nil || v != 2 {
		t.Fatalf("call: %v %v", v, err)
	}
	select {
	case <-firstCancelled:
	case <-time.After(5 * time.Second):
		t.Fatal("the first attempt's context was not cancelled")
	}
	a.batcher.flush()
	rcs, marks := sink.reports()
	// the hedge is reported; the cancelled first attempt is released, not reported
	if len(rcs) != 1 || rcs[0] != 0 || len(marks) != 1 || marks[0] != (AttemptMark{0, 2, AttemptHedge}) {
		t.Fatalf("reports %v marks %v", rcs, marks)
	}
	if st := a.Stats(); st.Hedges != 1 {
		t.Fatalf("%+v", st)
	}
	// not idempotent: never hedged
	err = a.Call(context.Background(), 1, 1, func(ctx context.Context, h Host, info AttemptInfo) error {
		if info.Kind == AttemptHedge {
			t.Error("a call not idempotent was hedged")
		}
		return nil
	}, CallOptions{})
	if err != nil {
		t.Fatal(err)
	}
}

func TestCallAttemptTimeoutsAreRetriedThenStop(t *testing.T) {
	a, sink := callAgent(t, nil)
	err := a.Call(context.Background(), 1, 1, func(ctx context.Context, h Host, info AttemptInfo) error {
		<-ctx.Done()
		return ctx.Err()
	}, CallOptions{MaxAttempts: 2, AttemptTimeout: 20 * time.Millisecond, Deadline: 10 * time.Second})
	var ce *CallError
	if !errors.As(err, &ce) || ce.Reason != CallStopAttempts || len(ce.Attempts) != 2 || ce.Attempts[0].Outcome != "timeout" || ce.Attempts[1].Outcome != "timeout" {
		t.Fatalf("call: %v", err)
	}
	a.batcher.flush()
	if rcs, _ := sink.reports(); len(rcs) != 2 || rcs[0] != RetcodeTimeout || rcs[1] != RetcodeTimeout {
		t.Fatalf("reports %v", rcs)
	}
}

func TestCallDeadlineAndCancellation(t *testing.T) {
	a, _ := callAgent(t, nil)
	block := func(ctx context.Context, h Host, info AttemptInfo) error {
		<-ctx.Done()
		return ctx.Err()
	}
	err := a.Call(context.Background(), 1, 1, block, CallOptions{AttemptTimeout: time.Hour, Deadline: 30 * time.Millisecond})
	var ce *CallError
	if !errors.As(err, &ce) || ce.Reason != CallStopDeadline || len(ce.Attempts) != 1 || ce.Attempts[0].Outcome != "timeout" {
		t.Fatalf("past the deadline: %v", err)
	}
	// the caller gives up while the attempt is out
	ctx, cancel := context.WithCancel(context.Background())
	err = a.Call(ctx, 1, 1, func(actx context.Context, h Host, info AttemptInfo) error {
		cancel()
		return block(actx, h, info)
	}, CallOptions{AttemptTimeout: time.Hour})
	if !errors.As(err, &ce) || ce.Reason != CallStopAborted || ce.Attempts[0].Outcome != "aborted" {
		t.Fatalf("cancelled: %v", err)
	}
}

func TestClassifyError(t *testing.T) {
	cases := []struct {
		err  error
		want Classified
	}{
		{context.DeadlineExceeded, Classified{RetcodeTimeout, true}},
		{syscall.ECONNREFUSED, Classified{RetcodeConnection, true}},
		{overloaded{}, Classified{RetcodeOverloaded, true}},
		{errors.New("mine"), Classified{RetcodeError, false}},
	}
	for _, c := range cases {
		if got := ClassifyError(c.err); got != c.want {
			t.Errorf("%v: %+v, want %+v", c.err, got, c.want)
		}
	}
}

type overloaded struct{}

func (overloaded) Error() string  { return "overloaded" }
func (overloaded) Retcode() int32 { return RetcodeOverloaded }
