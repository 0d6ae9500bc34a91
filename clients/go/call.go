package lars

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Call runs one logical call under the route's call policy, as the
// TypeScript agent's `call` (src/agent/call.ts): it picks a host, runs fn,
// reports the outcome with its attempt mark, and on a retriable failure
// tries a different host, within this agent's share of the route's retry
// budget (call_policy.go), MaxAttempts and the call's deadline. An
// idempotent call is hedged: with no answer after the route's hedge delay, a
// second attempt goes to another host (within the hedge budget); the first
// answer wins and the other attempts' contexts are cancelled. While the
// route sheds, a share of calls is refused at once. A call that gives up
// returns a *CallError naming why and every attempt.
//
// An attempt that answered or failed is reported (retcode 0, the
// classification's, or -1 for a timeout); an attempt cancelled because
// another one won, or because ctx ended, is not (the host did nothing wrong):
// its pick is released.

// RetcodeError: what Call reports for a failure the caller's own code
// raised (RetcodeTimeout and RetcodeConnection as the HTTP integration).
const RetcodeError = -5

// CallOptions of one Call. The zero value of every field is its default.
type CallOptions struct {
	// MaxAttempts: attempts at most, the first included (default 3).
	MaxAttempts int
	// Deadline: the whole call's time (default AttemptTimeout × MaxAttempts).
	Deadline time.Duration
	// AttemptTimeout: one attempt's time (default Options.Timeout, 1s).
	AttemptTimeout time.Duration
	// Idempotent: the call may run twice, so it may be hedged.
	Idempotent bool
	// NoHedge: do not hedge an idempotent call.
	NoHedge bool
	// HedgeDelay: hedge after this long instead of the route's hedge delay (the hedge budget still holds).
	HedgeDelay time.Duration
	// Classify: how a failure counts (default ClassifyError).
	Classify func(error) Classified
	// Key for the hash strategy ("" none).
	Key string
}

// Classified is how a failure counts: its retcode, and whether another host may be tried.
type Classified struct {
	Retcode   int32
	Retriable bool
}

// AttemptInfo is what an attempt's fn is told.
type AttemptInfo struct {
	// Attempt: 1 for the first, 2 for the next, ...
	Attempt int
	Kind    AttemptKind
	// Deadline of the whole call (carry it to the callee where the protocol has a place).
	Deadline time.Time
	// Timeout of this attempt (its context's deadline too).
	Timeout time.Duration
}

// Retcoder is an error that carries the retcode to report.
type Retcoder interface{ Retcode() int32 }

// ClassifyError is the default classification: an attempt timeout or a
// connection error is retried; an error with a retcode (Retcoder) is
// reported with it (retried when it is RetcodeOverloaded); anything else is
// reported as -5 and not retried (the caller's own error, which another host
// would repeat).
func ClassifyError(err error) Classified {
	if errors.Is(err, context.DeadlineExceeded) {
		return Classified{RetcodeTimeout, true}
	}
	var rc Retcoder
	if errors.As(err, &rc) && rc.Retcode() != 0 {
		return Classified{rc.Retcode(), rc.Retcode() == RetcodeOverloaded}
	}
	var op *net.OpError
	if errors.As(err, &op) || errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) || errors.Is(err, syscall.EHOSTUNREACH) || errors.Is(err, syscall.ENETUNREACH) {
		return Classified{RetcodeConnection, true}
	}
	var dns *net.DNSError
	if errors.As(err, &dns) {
		return Classified{RetcodeConnection, true}
	}
	return Classified{RetcodeError, false}
}

// CallStop is why a call stopped without a result.
type CallStop string

const (
	// CallStopBudget: a retry would have gone past the route's retry budget (this agent's share).
	CallStopBudget CallStop = "budget"
	// CallStopDeadline: the call's deadline passed.
	CallStopDeadline CallStop = "deadline"
	// CallStopShed: the route is shedding: refused locally before any attempt (fall back, do not retry).
	CallStopShed CallStop = "shed"
	// CallStopNoHost: no host to try, or none other than those tried already.
	CallStopNoHost CallStop = "no_host"
	// CallStopAttempts: every attempt allowed failed.
	CallStopAttempts CallStop = "attempts"
	// CallStopNotRetriable: the last failure was not one to retry.
	CallStopNotRetriable CallStop = "not_retriable"
	// CallStopAborted: ctx ended.
	CallStopAborted CallStop = "aborted"
)

// AttemptRecord is one attempt of a call.
type AttemptRecord struct {
	Attempt int
	Kind    AttemptKind
	// Host: ip:port
	Host string
	// Outcome: "ok", "error", "timeout", or "aborted" (stopped because the call ended otherwise; not reported)
	Outcome string
	// Retcode reported (none for an aborted attempt)
	Retcode int32
	Latency time.Duration
	Err     error
}

// CallError is what Call returns when it gives up: why, and every attempt.
type CallError struct {
	Modid, Cmdid uint32
	Reason       CallStop
	Detail       string
	Attempts     []AttemptRecord
}

var kindNames = [...]string{"first", "retry", "hedge"}

func (e *CallError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "lars: call to route %d.%d stopped: %s", e.Modid, e.Cmdid, e.Reason)
	if e.Detail != "" {
		fmt.Fprintf(&b, " (%s)", e.Detail)
	}
	b.WriteString("; attempts: ")
	if len(e.Attempts) == 0 {
		b.WriteString("none")
	}
	for i, a := range e.Attempts {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "#%d %s %s %s", a.Attempt, kindNames[a.Kind], a.Host, a.Outcome)
		if a.Outcome != "aborted" {
			fmt.Fprintf(&b, " (%d)", a.Retcode)
		}
	}
	return b.String()
}

// Unwrap is the last attempt's error.
func (e *CallError) Unwrap() error {
	for i := len(e.Attempts) - 1; i >= 0; i-- {
		if e.Attempts[i].Err != nil {
			return e.Attempts[i].Err
		}
	}
	return nil
}

// Call is CallValue without a value.
func (a *Agent) Call(ctx context.Context, modid, cmdid uint32, fn func(ctx context.Context, h Host, info AttemptInfo) error, o CallOptions) error {
	_, err := CallValue(ctx, a, modid, cmdid, func(ctx context.Context, h Host, info AttemptInfo) (struct{}, error) {
		return struct{}{}, fn(ctx, h, info)
	}, o)
	return err
}

// pickTries: picks tried to find a host the call has not tried yet.
const pickTries = 8

type attempt[T any] struct {
	n      int
	kind   AttemptKind
	host   Host
	start  time.Time
	ctx    context.Context
	cancel context.CancelFunc
	timer  *time.Timer
	done   bool
}

type attemptResult[T any] struct {
	a        *attempt[T]
	value    T
	err      error
	timedOut bool
}

// CallValue runs one logical call (see Agent.Call) and returns the value of the attempt that answered first.
func CallValue[T any](ctx context.Context, a *Agent, modid, cmdid uint32, fn func(ctx context.Context, h Host, info AttemptInfo) (T, error), o CallOptions) (T, error) {
	var zero T
	r, err := a.route(modid, cmdid)
	if err != nil {
		return zero, err
	}
	if r.status.Load() == statusLoading {
		if err := a.waitLoaded(ctx, r); err != nil {
			return zero, err
		}
	}
	maxAttempts := o.MaxAttempts
	if maxAttempts < 1 {
		maxAttempts = defaultMaxAttempts
	}
	attemptTimeout := o.AttemptTimeout
	if attemptTimeout <= 0 {
		attemptTimeout = a.o.Timeout
	}
	total := o.Deadline
	if total <= 0 {
		total = attemptTimeout * time.Duration(maxAttempts)
	}
	classify := o.Classify
	if classify == nil {
		classify = ClassifyError
	}
	start := time.Now()
	deadline := start.Add(total)
	nowMs := a.nowMs
	startMs := nowMs()
	deadlineMs := startMs + float64(total)/1e6

	r.mu.Lock()
	policy := PolicyOf(r.state)
	if r.budget == nil {
		r.budget = newCallBudget(startMs, agentWindowSec)
	}
	budget := r.budget
	if r.callRandom == nil {
		r.callRandom = a.o.Random()
	}
	shed := shedsCall(policy, r.callRandom())
	r.mu.Unlock()

	ce := &CallError{Modid: modid, Cmdid: cmdid}
	a.calls.calls.Add(1)
	stop := func(reason CallStop, detail string) (T, error) {
		a.calls.stop(reason)
		ce.Reason, ce.Detail = reason, detail
		return zero, ce
	}
	if ctx.Err() != nil {
		return stop(CallStopAborted, "")
	}
	if shed {
		return stop(CallStopShed, fmt.Sprintf("the route sheds %d %% of calls", int(policy.Shed*100+0.5)))
	}

	results := make(chan attemptResult[T], 2*maxAttempts)
	var live []*attempt[T]
	tried := map[string]bool{}
	made := 0
	pickFresh := func() (Host, bool) {
		for i := 0; i < pickTries; i++ {
			h, err := a.pickFrom(r, o.Key, o.Key != "")
			if err != nil {
				return Host{}, false
			}
			if !tried[h.String()] {
				return h, true
			}
			a.Release(h)
		}
		return Host{}, false
	}
	launch := func(kind AttemptKind) bool {
		h, ok := pickFresh()
		if !ok {
			return false
		}
		tried[h.String()] = true
		a.calls.attempt(kind)
		now := time.Now()
		timeout := attemptTimeout
		if left := deadline.Sub(now); left < timeout {
			timeout = left
		}
		if timeout < 0 {
			timeout = 0
		}
		made++
		actx, cancel := context.WithTimeout(ctx, timeout)
		at := &attempt[T]{n: made, kind: kind, host: h, start: now, ctx: actx, cancel: cancel}
		live = append(live, at)
		at.timer = time.AfterFunc(timeout, func() { results <- attemptResult[T]{a: at, err: context.DeadlineExceeded, timedOut: true} })
		info := AttemptInfo{Attempt: at.n, Kind: kind, Deadline: deadline, Timeout: timeout}
		go func() {
			v, err := fn(actx, h, info)
			results <- attemptResult[T]{a: at, value: v, err: err}
		}()
		return true
	}
	mark := func(at *attempt[T]) int {
		if at.kind == AttemptFirst {
			return 0
		}
		return at.n
	}
	remove := func(at *attempt[T]) {
		at.done = true
		at.cancel()
		at.timer.Stop()
		for i, x := range live {
			if x == at {
				live = append(live[:i], live[i+1:]...)
				break
			}
		}
	}
	// endAll ends every attempt still out: reported as timeouts when the deadline ended them, else released.
	endAll := func(timedOut bool) {
		for _, at := range append([]*attempt[T](nil), live...) {
			remove(at)
			lat := time.Since(at.start)
			if timedOut {
				_ = a.ReportAttempt(at.host, RetcodeTimeout, lat, -1, mark(at), at.kind)
				ce.Attempts = append(ce.Attempts, AttemptRecord{at.n, at.kind, at.host.String(), "timeout", RetcodeTimeout, lat, context.DeadlineExceeded})
			} else {
				a.Release(at.host)
				ce.Attempts = append(ce.Attempts, AttemptRecord{at.n, at.kind, at.host.String(), "aborted", 0, lat, nil})
			}
		}
	}
	fail := func(reason CallStop, detail string) (T, error) {
		endAll(reason == CallStopDeadline)
		return stop(reason, detail)
	}

	budget0 := func(f func()) {
		r.mu.Lock()
		f()
		r.mu.Unlock()
	}
	budget0(func() { budget.first(startMs) })
	if !launch(AttemptFirst) {
		return stop(CallStopNoHost, "")
	}
	deadlineTimer := time.NewTimer(deadline.Sub(time.Now()))
	defer deadlineTimer.Stop()
	var hedgeC <-chan time.Time
	ownDelay := (*float64)(nil)
	if o.HedgeDelay > 0 {
		d := float64(o.HedgeDelay) / 1e6
		ownDelay = &d
	}
	hedgeMs, hedging := hedgeDelayOf(policy, o.Idempotent, o.NoHedge, ownDelay, maxAttempts)
	if hedging {
		t := time.NewTimer(time.Duration(hedgeMs * 1e6))
		defer t.Stop()
		hedgeC = t.C
	}
	for {
		select {
		case <-ctx.Done():
			return fail(CallStopAborted, "")
		case <-deadlineTimer.C:
			return fail(CallStopDeadline, "")
		case <-hedgeC:
			hedgeC = nil
			var ok bool
			budget0(func() { ok = mayHedge(false, len(live), made, maxAttempts, nowMs(), budget, policy, hedgeMs) })
			if ok {
				launch(AttemptHedge)
			}
		case res := <-results:
			at := res.a
			if at.done {
				continue
			}
			// fn answering its context's own deadline is the attempt's timeout, whichever came first
			if !res.timedOut && res.err != nil && errors.Is(at.ctx.Err(), context.DeadlineExceeded) && ctx.Err() == nil {
				res.timedOut = true
			}
			remove(at)
			lat := time.Since(at.start)
			if res.err == nil {
				_ = a.ReportAttempt(at.host, 0, lat, -1, mark(at), at.kind)
				endAll(false)
				return res.value, nil
			}
			c := Classified{RetcodeTimeout, true}
			outcome := "timeout"
			if !res.timedOut {
				c, outcome = classify(res.err), "error"
			}
			_ = a.ReportAttempt(at.host, c.Retcode, lat, -1, mark(at), at.kind)
			ce.Attempts = append(ce.Attempts, AttemptRecord{at.n, at.kind, at.host.String(), outcome, c.Retcode, lat, res.err})
			var d afterFailureDecision
			budget0(func() {
				d = afterFailure(failedState{c.Retriable, len(live), made, maxAttempts, nowMs(), deadlineMs}, budget, policy)
			})
			switch d {
			case decideWait:
			case decideRetry:
				if !launch(AttemptRetry) {
					return fail(CallStopNoHost, "no host other than those tried")
				}
			default:
				return fail(CallStop(d), "")
			}
		}
	}
}

// callCounters: an agent's logical calls, attempts by kind, and calls stopped without a result by why.
type callCounters struct {
	calls    atomic.Uint64
	attempts [3]atomic.Uint64
	mu       sync.Mutex
	stops    map[CallStop]uint64
}

func (c *callCounters) attempt(k AttemptKind) { c.attempts[k].Add(1) }

func (c *callCounters) stop(reason CallStop) {
	c.mu.Lock()
	if c.stops == nil {
		c.stops = map[CallStop]uint64{}
	}
	c.stops[reason]++
	c.mu.Unlock()
}

func (c *callCounters) snapshot() map[CallStop]uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[CallStop]uint64, len(c.stops))
	for k, v := range c.stops {
		out[k] = v
	}
	return out
}
