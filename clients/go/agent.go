package lars

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
)

// Agent picks hosts for calls from routes it follows and reports the calls'
// results. Safe for concurrent use. Create it with Connect.
type Agent struct {
	o        resolved
	id       string
	names    names
	nc       *nats.Conn
	js       nats.JetStreamContext
	routes   sync.Map // uint64 (modid<<32|cmdid) → *followed
	batcher  *batcher
	outbox   *outbox // nil with ReportDeliveryCore
	pub      *jsPublisher
	ownsConn bool
	// ReportDeliveryCore: reports of batches the client refused
	coreDrops atomic.Uint64
	coreLog   *rateLog
	rejects   rejectCounter
	closed    atomic.Bool
	picks     atomic.Uint64
	reports   atomic.Uint64
	counters  followerCounters

	kvMu sync.Mutex
	kv   nats.KeyValue
	regs registrations
	done chan struct{}
	// reads a route's stored state again (tests replace it)
	readRoute func(*followed)
	calls     callCounters
}

// Stats are the agent's counters.
type Stats struct {
	Routes, PendingReports, PendingBatches                int
	Picks, Reports, Batches, AckedBatches, AckedReports   uint64
	RetriedBatches, ConfirmedBatches, DroppedReports      uint64
	RouteUpdates, StaleUpdates, HeldEmptyUpdates, Resyncs uint64
	// VersionResets: routes whose stored state was found gone, or older and published later, while one was held (their versions start again)
	VersionResets uint64
	// Call: logical calls, attempts by kind (first, retry, hedge), calls stopped without a result by why
	Calls                          uint64
	FirstAttempts, Retries, Hedges uint64
	CallStops                      map[CallStop]uint64
	Rejects                        map[RejectKind]uint64
}

// Connect connects to NATS as Options say and returns an agent. ctx bounds the connection attempt.
func Connect(ctx context.Context, opts Options) (*Agent, error) {
	o, err := resolve(opts)
	if err != nil {
		return nil, err
	}
	n, err := newNames(o.Prefix)
	if err != nil {
		return nil, err
	}
	a := &Agent{o: o, id: o.AgentID, names: n, done: make(chan struct{})}
	a.rejects.log = o.Logger
	a.coreLog = &rateLog{log: o.Logger, interval: 10 * time.Second, last: map[string]time.Time{}}
	if o.Conn != nil {
		a.nc = o.Conn
		// the caller's handler first, then the agent's
		prev := a.nc.ReconnectHandler()
		a.nc.SetReconnectHandler(func(c *nats.Conn) {
			if prev != nil {
				prev(c)
			}
			a.onReconnect()
		})
	} else {
		nc, err := dial(ctx, o, a)
		if err != nil {
			return nil, err
		}
		a.nc, a.ownsConn = nc, true
	}
	if err := a.startReports(); err != nil {
		if a.ownsConn {
			a.nc.Close()
		}
		return nil, err
	}
	return a, nil
}

// dial opens the agent's own connection as Options say; ctx bounds the attempt.
func dial(ctx context.Context, o resolved, a *Agent) (*nats.Conn, error) {
	nopts, err := natsOptions(o, a)
	if err != nil {
		return nil, err
	}
	type result struct {
		nc  *nats.Conn
		err error
	}
	ch := make(chan result, 1)
	go func() {
		nc, err := nats.Connect(o.Servers, nopts...)
		ch <- result{nc, err}
	}()
	var r result
	select {
	case r = <-ch:
	case <-ctx.Done():
		go func() {
			if r := <-ch; r.nc != nil {
				r.nc.Close()
			}
		}()
		return nil, ctx.Err()
	}
	if r.err != nil {
		return nil, fmt.Errorf("lars: connect to %s: %w", o.Servers, r.err)
	}
	return r.nc, nil
}

// startReports makes the JetStream context (the buckets), the batcher and, for acknowledged delivery, the outbox and its publisher.
func (a *Agent) startReports() error {
	o := a.o
	js, err := a.nc.JetStream()
	if err != nil {
		return err
	}
	a.js = js
	if o.ReportDelivery == ReportDeliveryCore {
		a.batcher = newBatcher(a.names, o.Partitions, a.id, o.Zone, o.BatchMaxReports, o.BatchMaxDelay, a.publishCore)
		return nil
	}
	a.batcher = newBatcher(a.names, o.Partitions, a.id, o.Zone, o.BatchMaxReports, o.BatchMaxDelay, a.toOutbox)
	a.outbox = newOutbox(outboxConfig{
		sender: a.id, instance: randomID(4), window: o.PublishWindow, maxReports: o.MaxPendingReports, extraPending: a.batcher.pending,
		probe: o.RetryInterval, fastRetry: 20 * time.Second, backoff: o.RetryBackoff, confirmDelay: o.ConfirmDelay, ackTimeout: o.AckTimeout,
		log: o.Logger, clock: realClock(o.Now),
	})
	pub, err := newJSPublisher(a.nc, a.outbox.answered)
	if err != nil {
		return err
	}
	a.pub = pub
	a.outbox.mu.Lock()
	a.outbox.pub = pub
	a.outbox.mu.Unlock()
	return nil
}

// ID is the agent's id, the sender of its report batches.
func (a *Agent) ID() string { return a.id }

// Conn is the agent's NATS connection.
func (a *Agent) Conn() *nats.Conn { return a.nc }

// nowMs is the clock in whole milliseconds since the epoch, as the TypeScript
// agent's Date.now(). Without an injected Now it reads the monotonic clock
// only (time.Since of the agent's start), half the cost of time.Now.
func (a *Agent) nowMs() float64 {
	if a.o.ownClock {
		return math.Floor(a.o.baseMs + float64(time.Since(a.o.base))/1e6)
	}
	return float64(a.o.Now().UnixMilli())
}

func (a *Agent) toOutbox(subject string, data []byte, reports int) {
	a.outbox.add(subject, data, reports)
}

// publishCore publishes a batch as a plain message (ReportDeliveryCore); one the client refuses is dropped and counted.
func (a *Agent) publishCore(subject string, data []byte, reports int) {
	if err := a.nc.Publish(subject, data); err != nil {
		a.coreDrops.Add(uint64(reports))
		a.coreLog.emit(time.Now(), "warn", "core-publish", "report batch could not be published; dropped", "reports", reports, "err", err.Error())
	}
}

// onReconnect: what was in flight on the old connection may be lost, and route states may have been missed.
func (a *Agent) onReconnect() {
	if a.closed.Load() {
		return
	}
	a.o.Logger.Info("reconnected; re-reading every followed route", "agent", a.id)
	a.counters.resyncs.Add(1)
	a.routes.Range(func(_, v any) bool {
		go a.readStored(v.(*followed))
		return true
	})
	a.batcher.flush()
	if a.outbox != nil {
		a.outbox.kick()
	}
}

// ------------------------------------------------------------------ picking

// GetHost picks a host for one call on route (modid, cmdid). On the route's
// first use it waits for the route's state (at most LoadTimeout, or ctx);
// after that it answers from the local cache at once, also while NATS is away.
// Errors: ErrNoRoute, ErrNoHost, ErrClosed, or ctx's.
func (a *Agent) GetHost(ctx context.Context, modid, cmdid uint32) (Host, error) {
	return a.getHost(ctx, modid, cmdid, "", false)
}

// GetHostKey is GetHost with a key for the hash strategy (and a zone draw that keeps the key in its zone).
func (a *Agent) GetHostKey(ctx context.Context, modid, cmdid uint32, key string) (Host, error) {
	return a.getHost(ctx, modid, cmdid, key, true)
}

func (a *Agent) getHost(ctx context.Context, modid, cmdid uint32, key string, hasKey bool) (Host, error) {
	r, err := a.route(modid, cmdid)
	if err != nil {
		return Host{}, err
	}
	if r.status.Load() == statusLoading {
		if err := a.waitLoaded(ctx, r); err != nil {
			return Host{}, err
		}
	}
	return a.pickFrom(r, key, hasKey)
}

func (a *Agent) pickFrom(r *followed, key string, hasKey bool) (Host, error) {
	if r.status.Load() != statusLoaded {
		return Host{}, ErrNoRoute
	}
	r.mu.Lock()
	i := r.model.pickAt(key, hasKey, r.nowFn, a.o.fb, a.o.ProbeTrials)
	var h Host
	if i >= 0 {
		h = r.model.hosts[i].result
	}
	r.mu.Unlock()
	if i < 0 {
		return Host{}, ErrNoHost
	}
	a.picks.Add(1)
	return h, nil
}

// Release gives back a pick that was not used (no call was made): nothing is reported.
func (a *Agent) Release(h Host) {
	if h.h == nil || h.r == nil {
		return
	}
	h.r.mu.Lock()
	noteRelease(h.h, a.nowMs())
	h.r.mu.Unlock()
}

// ----------------------------------------------------------------- reporting

// Report records a call's result: retcode 0 is success, anything else an
// error (Lars); latency is the call's duration. Batched to the route nodes.
// An error only for bad input (a negative latency, a host that is no IPv4
// address and port) or a closed agent.
func (a *Agent) Report(h Host, retcode int32, latency time.Duration) error {
	return a.report(h, retcode, latency, -1, 0, AttemptFirst)
}

// ReportUtilization is Report with the busy share (0..1) the host answered
// with; above 1 counts as 1, a negative value as none.
func (a *Agent) ReportUtilization(h Host, retcode int32, latency time.Duration, utilization float64) error {
	return a.report(h, retcode, latency, utilization, 0, AttemptFirst)
}

// ReportAttempt is ReportUtilization for a call that was attempt number
// `attempt` (1..255; 2 for the second) of one logical call, a retry or a
// hedge: the route node counts it against the route's retry or hedge
// budget. Kind AttemptFirst is a first attempt (no mark).
func (a *Agent) ReportAttempt(h Host, retcode int32, latency time.Duration, utilization float64, attempt int, kind AttemptKind) error {
	if kind == AttemptFirst {
		attempt = 0
	} else if attempt < 1 || attempt > maxAttempt || kind > AttemptHedge {
		return fmt.Errorf("lars: bad report: attempt %d kind %d", attempt, kind)
	}
	return a.report(h, retcode, latency, utilization, attempt, kind)
}

// report: a checked mark (attempt 0: none).
func (a *Agent) report(h Host, retcode int32, latency time.Duration, utilization float64, attempt int, kind AttemptKind) error {
	if a.closed.Load() {
		return ErrClosed
	}
	if latency < 0 || math.IsNaN(utilization) {
		return fmt.Errorf("lars: bad report: latency %v utilization %v", latency, utilization)
	}
	lat := float64(latency) / 1e6
	if lat > maxLatency {
		lat = maxLatency
	}
	if utilization > 1 {
		utilization = 1
	}
	if utilization < 0 {
		utilization = -1
	}
	ph, r := h.h, h.r
	if ph == nil {
		if !isIPv4(h.IP) || h.Port < 1 || h.Port > 65535 {
			return fmt.Errorf("lars: bad report: host %s", h)
		}
		if v, ok := a.routes.Load(routeKey(h.Modid, h.Cmdid)); ok {
			r = v.(*followed)
			r.mu.Lock()
			if r.model != nil {
				ph = r.model.byKey[hostKey(h.IP, h.Port)]
			}
			r.mu.Unlock()
		}
	}
	now := a.nowMs()
	if ph != nil && r != nil {
		r.mu.Lock()
		noteReport(ph, retcode == 0, lat, now, a.o.fb)
		r.mu.Unlock()
	}
	a.reports.Add(1)
	a.batcher.add(now, h.Modid, h.Cmdid, h.IP, h.Port, ph, retcode, lat, utilization, attempt, kind)
	return nil
}

// Flush sends buffered reports and waits until the server has them: with
// acknowledged delivery until JetStream acknowledged every batch made so far,
// with core delivery until the server processed what was sent. It waits until
// ctx ends, or FlushTimeout when ctx has no deadline.
func (a *Agent) Flush(ctx context.Context) error {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, a.o.FlushTimeout)
		defer cancel()
	}
	a.batcher.flush()
	if a.outbox != nil {
		return a.outbox.settled(ctx)
	}
	if a.nc.IsClosed() {
		return ErrClosed
	}
	return a.nc.FlushWithContext(ctx)
}

// Stats returns the agent's counters.
func (a *Agent) Stats() Stats {
	var o outboxStats
	if a.outbox != nil {
		o = a.outbox.stats()
	}
	n := 0
	a.routes.Range(func(_, _ any) bool { n++; return true })
	return Stats{
		Routes: n, PendingReports: o.pendingReports + a.batcher.pending(), PendingBatches: o.pendingBatches,
		Picks: a.picks.Load(), Reports: a.reports.Load(), Batches: a.batcher.batchCount(), AckedBatches: o.ackedBatches, AckedReports: o.ackedReports,
		RetriedBatches: o.retried, ConfirmedBatches: o.confirmedBatches, DroppedReports: o.drops + a.coreDrops.Load(),
		RouteUpdates: a.counters.updates.Load(), StaleUpdates: a.counters.stale.Load(), HeldEmptyUpdates: a.counters.held.Load(), Resyncs: a.counters.resyncs.Load(), VersionResets: a.counters.versionResets.Load(),
		Calls: a.calls.calls.Load(), FirstAttempts: a.calls.attempts[AttemptFirst].Load(), Retries: a.calls.attempts[AttemptRetry].Load(), Hedges: a.calls.attempts[AttemptHedge].Load(), CallStops: a.calls.snapshot(),
		Rejects: a.rejects.snapshot(),
	}
}

// IsConnected: false between a lost connection and the reconnect (picks keep working from the cache).
func (a *Agent) IsConnected() bool { return a.nc.IsConnected() }

// Close drains self-registrations, flushes reports (waiting for acks until
// ctx ends, or CloseTimeout when ctx has no deadline; what is left is
// dropped and counted), stops following routes and closes the connection.
func (a *Agent) Close(ctx context.Context) error {
	if a.closed.Load() {
		return nil
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, a.o.CloseTimeout)
		defer cancel()
	}
	regErr := a.regs.stopAll(ctx)
	var flushErr error
	if !a.nc.IsClosed() {
		flushErr = a.Flush(ctx)
	}
	a.closed.Store(true)
	close(a.done)
	a.batcher.stop()
	a.batcher.flush() // a report made while flushing: to the outbox, which counts what is left as dropped
	if a.outbox != nil {
		a.outbox.abandon()
	}
	a.pub.close()
	a.routes.Range(func(_, v any) bool {
		v.(*followed).close()
		return true
	})
	if a.ownsConn {
		a.nc.Close()
	}
	if flushErr != nil && !errors.Is(flushErr, context.DeadlineExceeded) && !errors.Is(flushErr, context.Canceled) {
		return flushErr
	}
	return regErr
}
