package lars

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
)

// Route following (src/agent/route-follower.ts): on a route's first use the
// agent subscribes to <prefix>.route.<m>.<c>, then reads the routes bucket
// (a change between the two arrives on the subscription), and keeps the
// highest version it has seen. After every reconnect it reads the bucket
// again. While NATS is away the cached state keeps serving picks. A
// missing key means the route is not registered. A bucket that lost the
// state held here, or holds an older version published later (a server back
// on a fresh store: the route's versions start again), makes it take the
// next state whatever its version (route_versions.go); a lower version
// published later than the one held makes it read the bucket, at most once
// per 2s per route.

const (
	statusLoading int32 = iota
	statusUnregistered
	statusLoaded
)

type followerCounters struct {
	updates, stale, held, resyncs, versionResets atomic.Uint64
}

// verifyInterval: at most one bucket read per route per interval, prompted by lower versions on the route subject.
const verifyInterval = 2 * time.Second

type followed struct {
	modid, cmdid uint32
	status       atomic.Int32
	mu           sync.Mutex // guards everything below, and the model's hosts and strategy
	state        *RouteState
	model        *agentRoute
	nowFn        func() float64 // read on every pick, with the fields above
	loaded       chan struct{}
	loadOnce     sync.Once
	sub          *nats.Subscription
	watchers     map[chan RouteState]struct{}
	readFailures int
	// a bucket read is to be retried (after a failure)
	retryPending bool
	// the routes bucket lost the state held here: the next state is taken whatever its version
	versionReset bool
	// when a lower version made the agent read the bucket
	checkedAt time.Time
	// Call: this agent's budget of the route's call policy, and the source of its shedding draws
	budget     *callBudget
	callRandom Random
	// the strings of the states read on the route's subscription (its handler's alone)
	intern map[string]string
	closed bool
}

func routeKey(modid, cmdid uint32) uint64 { return uint64(modid)<<32 | uint64(cmdid) }

func (a *Agent) newStrategy(random Random, now func() float64) func(string) strategy {
	o := a.o
	return func(name string) strategy {
		so := strategyOptions{random: random, now: now, decayMs: o.fb.decayMs, timeoutMs: o.fb.timeoutMs}
		if o.pickZone == "" {
			return createStrategy(name, so)
		}
		return newZoneAware(func() strategy { return createStrategy(name, so) }, o.pickZone, float64(o.ZoneMinHealthyPercent), random)
	}
}

// route is the followed route, following it from now on if it was not.
func (a *Agent) route(modid, cmdid uint32) (*followed, error) {
	k := routeKey(modid, cmdid)
	if v, ok := a.routes.Load(k); ok {
		return v.(*followed), nil
	}
	if a.closed.Load() {
		return nil, ErrClosed
	}
	r := &followed{modid: modid, cmdid: cmdid, loaded: make(chan struct{}), watchers: map[chan RouteState]struct{}{}, nowFn: a.nowMs}
	r.model = newAgentRoute(a.id, a.o.Strategy, a.newStrategy(a.o.Random(), a.nowMs))
	r.model.modid, r.model.cmdid, r.model.owner = modid, cmdid, r
	if v, loaded := a.routes.LoadOrStore(k, r); loaded {
		return v.(*followed), nil
	}
	a.start(r)
	return r, nil
}

func (a *Agent) start(r *followed) {
	sub, err := a.nc.Subscribe(a.names.route(r.modid, r.cmdid), func(m *nats.Msg) { a.onMessage(r, m.Data, m.Subject) })
	if err != nil {
		a.o.Logger.Warn("route subscription failed", "route", fmt.Sprintf("%d.%d", r.modid, r.cmdid), "err", err.Error())
	}
	r.mu.Lock()
	r.sub = sub
	r.mu.Unlock()
	go a.readStored(r)
}

func (a *Agent) waitLoaded(ctx context.Context, r *followed) error {
	t := time.NewTimer(a.o.LoadTimeout)
	defer t.Stop()
	select {
	case <-r.loaded:
	case <-t.C:
	case <-ctx.Done():
		return ctx.Err()
	case <-a.done:
		return ErrClosed
	}
	return nil
}

func (a *Agent) routesKV() (nats.KeyValue, error) {
	a.kvMu.Lock()
	defer a.kvMu.Unlock()
	if a.kv != nil {
		return a.kv, nil
	}
	kv, err := a.js.KeyValue(a.names.routesBucket())
	if err != nil {
		return nil, err
	}
	a.kv = kv
	return kv, nil
}

var readRetry = []time.Duration{250 * time.Millisecond, 500 * time.Millisecond, time.Second, 2 * time.Second, 5 * time.Second}

// readStored reads the route's state from the routes bucket.
func (a *Agent) readStored(r *followed) {
	if a.closed.Load() {
		return
	}
	kv, err := a.routesKV()
	var data []byte
	found := false
	if err == nil {
		var e nats.KeyValueEntry
		e, err = kv.Get(a.names.routeKey(r.modid, r.cmdid))
		if err == nil {
			data, found = e.Value(), true
		} else if errors.Is(err, nats.ErrKeyNotFound) {
			err = nil
		}
	} else if errors.Is(err, nats.ErrBucketNotFound) {
		err = nil // no node has made the bucket yet: nothing is registered
	}
	if err != nil {
		r.mu.Lock()
		n := r.readFailures
		r.readFailures++
		r.retryPending = true
		r.mu.Unlock()
		a.o.Logger.Warn("could not read route state; serving what is cached and retrying", "route", fmt.Sprintf("%d.%d", r.modid, r.cmdid), "err", err.Error())
		d := readRetry[len(readRetry)-1]
		if n < len(readRetry) {
			d = readRetry[n]
		}
		time.AfterFunc(d, func() {
			r.mu.Lock()
			r.retryPending = false
			r.mu.Unlock()
			a.readStored(r)
		})
		if n == 0 {
			r.loadOnce.Do(func() { close(r.loaded) })
		}
		return
	}
	a.stored(r, data, found)
}

// stored takes a read of the routes bucket: the route's stored state (found), or none.
func (a *Agent) stored(r *followed, data []byte, found bool) {
	var s *RouteState
	if found {
		var derr error
		s, derr = DecodeRouteState(data)
		if derr != nil {
			a.rejects.reject(derr, a.names.routesBucket())
		}
	}
	r.mu.Lock()
	r.readFailures = 0
	if (!found || s != nil) && versionsStartedAgain(stampOf(r.state), stampOf(s), r.versionReset) {
		r.versionReset = true
		a.counters.versionResets.Add(1)
		var storedVersion any
		if s != nil {
			storedVersion = s.Version
		}
		a.o.Logger.Warn("the routes bucket lost this route's state; serving the last one held and taking the next state published whatever its version",
			"route", fmt.Sprintf("%d.%d", r.modid, r.cmdid), "held", r.state.Version, "stored", storedVersion)
	}
	r.mu.Unlock()
	if s != nil {
		a.apply(r, s)
	}
	if !found && r.status.Load() == statusLoading {
		r.status.Store(statusUnregistered)
	}
	r.loadOnce.Do(func() { close(r.loaded) })
}

// verify reads the route's stored state again, at most once per verifyInterval and not while a retry is pending.
func (a *Agent) verify(r *followed) {
	now := a.o.Now()
	r.mu.Lock()
	if r.retryPending || (!r.checkedAt.IsZero() && now.Sub(r.checkedAt) < verifyInterval) {
		r.mu.Unlock()
		return
	}
	r.checkedAt = now
	r.mu.Unlock()
	read := a.readRoute
	if read == nil {
		read = a.readStored
	}
	go read(r)
}

func (a *Agent) onMessage(r *followed, data []byte, subject string) {
	if r.intern == nil {
		r.intern = map[string]string{}
	}
	s, err := decodeRouteStateInterned(data, r.intern)
	if err != nil {
		a.rejects.reject(err, subject)
		return
	}
	if s.Modid != r.modid || s.Cmdid != r.cmdid {
		a.rejects.reject(reject(RejectSubjectMismatch, "state of %d.%d on %s", s.Modid, s.Cmdid, subject), subject)
		return
	}
	a.apply(r, s)
}

// explainsHosts: a host of s counts as available, or has a reason for none.
func explainsHosts(s *RouteState) bool {
	for i := range s.Hosts {
		h := &s.Hosts[i]
		if h.PickWeight > 0 || h.State == StateOverloaded || h.State == StateDraining {
			return true
		}
	}
	return false
}

func hasPickableState(s *RouteState) bool {
	for i := range s.Hosts {
		if s.Hosts[i].PickWeight > 0 {
			return true
		}
	}
	return false
}

// apply keeps the state when it is newer than the one held (versions never go backwards, unless they started again).
func (a *Agent) apply(r *followed, s *RouteState) {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return
	}
	if v := stateVerdictOf(stampOf(r.state), versionStamp{s.Version, s.Ts, s.Removed}, r.versionReset); v != verdictApply {
		r.mu.Unlock()
		a.counters.stale.Add(1)
		if v == verdictStaleCheckStore {
			a.verify(r)
		}
		return
	}
	if !a.o.KeepEmptyUpdates && !s.Removed && r.status.Load() == statusLoaded && r.state != nil && hasPickableState(r.state) && !explainsHosts(s) {
		r.mu.Unlock()
		a.counters.held.Add(1)
		a.o.Logger.Warn("route update with no pickable host and no removal ignored; keeping the last state with hosts", "route", fmt.Sprintf("%d.%d", r.modid, r.cmdid), "version", s.Version)
		return
	}
	a.counters.updates.Add(1)
	r.versionReset = false
	r.state = s
	if !s.Removed {
		r.model.apply(s)
	}
	if s.Removed {
		r.status.Store(statusUnregistered)
	} else {
		r.status.Store(statusLoaded)
	}
	for ch := range r.watchers {
		offer(ch, *s)
	}
	r.mu.Unlock()
}

// offer sends s without blocking: a watcher that lags loses the oldest state it has not read (every state is whole).
func offer(ch chan RouteState, s RouteState) {
	for {
		select {
		case ch <- s:
			return
		default:
		}
		select {
		case <-ch:
		default:
		}
	}
}

func (r *followed) close() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return
	}
	r.closed = true
	if r.sub != nil {
		_ = r.sub.Unsubscribe()
	}
	for ch := range r.watchers {
		close(ch)
	}
	r.watchers = nil
}

// Route returns the route's current state (loading it on first use), or ErrNoRoute. Do not modify it.
func (a *Agent) Route(ctx context.Context, modid, cmdid uint32) (*RouteState, error) {
	r, err := a.route(modid, cmdid)
	if err != nil {
		return nil, err
	}
	if r.status.Load() == statusLoading {
		if err := a.waitLoaded(ctx, r); err != nil {
			return nil, err
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.status.Load() != statusLoaded || r.state == nil {
		return nil, ErrNoRoute
	}
	return r.state, nil
}

// Watch returns a channel of the route's states: the current one once
// loaded, then every newer one. A reader that lags skips to the newest
// states. The channel is closed when ctx ends or the agent closes.
func (a *Agent) Watch(ctx context.Context, modid, cmdid uint32) (<-chan RouteState, error) {
	r, err := a.route(modid, cmdid)
	if err != nil {
		return nil, err
	}
	ch := make(chan RouteState, 8)
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil, ErrClosed
	}
	r.watchers[ch] = struct{}{}
	if r.state != nil && r.status.Load() == statusLoaded {
		offer(ch, *r.state)
	}
	r.mu.Unlock()
	go func() {
		select {
		case <-ctx.Done():
		case <-a.done:
			return // closed by the route
		}
		r.mu.Lock()
		if _, ok := r.watchers[ch]; ok {
			delete(r.watchers, ch)
			close(ch)
		}
		r.mu.Unlock()
	}()
	return ch, nil
}

// rejectCounter counts refused messages by kind and logs at most one line per kind per 10 s.
type rejectCounter struct {
	mu     sync.Mutex
	counts map[RejectKind]uint64
	last   map[RejectKind]time.Time
	log    Logger
}

func (c *rejectCounter) reject(err error, subject string) {
	var re *RejectError
	if !errors.As(err, &re) {
		re = &RejectError{Kind: RejectMalformed, Detail: err.Error()}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.counts == nil {
		c.counts, c.last = map[RejectKind]uint64{}, map[RejectKind]time.Time{}
	}
	c.counts[re.Kind]++
	if time.Since(c.last[re.Kind]) > 10*time.Second {
		c.last[re.Kind] = time.Now()
		if c.log != nil {
			c.log.Warn("message refused", "kind", string(re.Kind), "detail", re.Detail, "subject", subject)
		}
	}
}

func (c *rejectCounter) snapshot() map[RejectKind]uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[RejectKind]uint64, len(c.counts))
	for k, v := range c.counts {
		out[k] = v
	}
	return out
}
