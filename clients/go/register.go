package lars

import (
	"context"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
)

// Self-registration (src/agent/self-register.ts): a service instance adds
// itself to a route through the <prefix>_selfreg bucket, keeps itself there
// with heartbeats, and on Stop (or the agent's Close) says it is draining,
// keeps serving DrainTime (agents stop picking it) and deletes its key.

// Registration describes a host registering itself. Zero values: Weight
// 100, TTL 10s, Heartbeat TTL/5, DrainTime 2s, Instance "<hostname>:<pid>".
type Registration struct {
	Modid, Cmdid uint32
	IP           string
	Port         int
	Weight       int
	Zone         string
	Instance     string
	TTL          time.Duration
	Heartbeat    time.Duration
	DrainTime    time.Duration
}

// Registered is a live self-registration.
type Registered struct {
	a      *Agent
	reg    Registration
	key    string
	kv     nats.KeyValue
	stop   chan struct{}
	done   chan struct{}
	once   sync.Once
	stopEr error
}

type registrations struct {
	mu   sync.Mutex
	live map[*Registered]struct{}
}

func (rs *registrations) add(r *Registered) {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	if rs.live == nil {
		rs.live = map[*Registered]struct{}{}
	}
	rs.live[r] = struct{}{}
}

func (rs *registrations) remove(r *Registered) {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	delete(rs.live, r)
}

func (rs *registrations) stopAll(ctx context.Context) error {
	rs.mu.Lock()
	all := make([]*Registered, 0, len(rs.live))
	for r := range rs.live {
		all = append(all, r)
	}
	rs.mu.Unlock()
	var first error
	for _, r := range all {
		if err := r.Stop(ctx); err != nil && first == nil {
			first = err
		}
	}
	return first
}

func (r Registration) encode(state string, ts float64) []byte {
	w := mpWriter{}
	n := 10
	if r.Zone != "" {
		n++
	}
	w.mapHeader(n)
	w.str("v")
	w.int(1)
	w.str("modid")
	w.int(int64(r.Modid))
	w.str("cmdid")
	w.int(int64(r.Cmdid))
	w.str("ip")
	w.str(r.IP)
	w.str("port")
	w.int(int64(r.Port))
	w.str("weight")
	w.int(int64(r.Weight))
	if r.Zone != "" {
		w.str("zone")
		w.str(r.Zone)
	}
	w.str("state")
	w.str(state)
	w.str("instance")
	w.str(r.Instance)
	w.str("ttl_ms")
	w.int(int64(r.TTL / time.Millisecond))
	w.str("ts")
	w.num(ts)
	return w.b
}

// Register adds a host to a route and keeps it there until Stop or Close.
func (a *Agent) Register(ctx context.Context, reg Registration) (*Registered, error) {
	if a.closed.Load() {
		return nil, ErrClosed
	}
	if reg.Weight == 0 {
		reg.Weight = 100
	}
	if reg.TTL == 0 {
		reg.TTL = 10 * time.Second
	}
	if reg.Heartbeat == 0 {
		reg.Heartbeat = reg.TTL / 5
	}
	if reg.DrainTime == 0 {
		reg.DrainTime = 2 * time.Second
	}
	if reg.Instance == "" {
		h, _ := os.Hostname()
		reg.Instance = fmt.Sprintf("%s:%d", h, os.Getpid())
	}
	if len(reg.Instance) > 128 {
		reg.Instance = reg.Instance[:128]
	}
	// the contract's rules, as the route nodes apply them
	if _, err := decodeSelfRegistration(reg.encode("up", a.nowMs())); err != nil {
		return nil, fmt.Errorf("lars: bad self-registration of %s:%d for %d.%d: %w", reg.IP, reg.Port, reg.Modid, reg.Cmdid, err)
	}
	if reg.Heartbeat <= 0 || reg.Heartbeat >= reg.TTL {
		return nil, fmt.Errorf("lars: Heartbeat must be below TTL (%v), got %v", reg.TTL, reg.Heartbeat)
	}
	kv, err := a.js.KeyValue(a.names.selfRegBucket())
	if err != nil {
		return nil, fmt.Errorf("lars: no self-registration bucket %s: start a route node ('lars node') first: %w", a.names.selfRegBucket(), err)
	}
	r := &Registered{a: a, reg: reg, key: a.names.selfRegKey(reg.Modid, reg.Cmdid, reg.IP, reg.Port), kv: kv, stop: make(chan struct{}), done: make(chan struct{})}
	if err := r.put(ctx, "up"); err != nil {
		return nil, err
	}
	a.regs.add(r)
	go r.heartbeats()
	return r, nil
}

func (r *Registered) put(ctx context.Context, state string) error {
	type res struct{ err error }
	ch := make(chan res, 1)
	go func() {
		_, err := r.kv.Put(r.key, r.reg.encode(state, r.a.nowMs()))
		ch <- res{err}
	}()
	select {
	case x := <-ch:
		return x.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (r *Registered) heartbeats() {
	defer close(r.done)
	t := time.NewTicker(r.reg.Heartbeat)
	defer t.Stop()
	for {
		select {
		case <-r.stop:
			return
		case <-t.C:
			ctx, cancel := context.WithTimeout(context.Background(), r.reg.Heartbeat)
			if err := r.put(ctx, "up"); err != nil {
				r.a.o.Logger.Warn("self-registration heartbeat failed; retrying at the next", "key", r.key, "err", err.Error())
			}
			cancel()
		}
	}
}

// Stop leaves the route gracefully: "draining", DrainTime of serving, then the key deleted.
func (r *Registered) Stop(ctx context.Context) error {
	r.once.Do(func() {
		close(r.stop)
		<-r.done
		r.a.regs.remove(r)
		if err := r.put(ctx, "draining"); err != nil {
			r.stopEr = err
			return
		}
		t := time.NewTimer(r.reg.DrainTime)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
		}
		r.stopEr = r.kv.Delete(r.key)
	})
	return r.stopEr
}

// decodeSelfRegistration checks a SelfRegistration (the route nodes' reading).
func decodeSelfRegistration(b []byte) (map[string]any, error) {
	return checked(b, "self-registration", readSelfRegistration)
}

func readSelfRegistration(c *checker, m map[string]any) map[string]any {
	if c.required(m, "", "v", "modid", "cmdid", "ip", "port", "weight", "state", "instance", "ttl_ms", "ts") {
		c.integer(m["modid"], "modid", 0, maxUint32, "")
		c.integer(m["cmdid"], "cmdid", 0, maxUint32, "")
		c.ip(m["ip"], "ip")
		c.integer(m["port"], "port", 1, 65535, "")
		c.integer(m["weight"], "weight", minWeight, maxWeight, "")
		c.zone(m, "zone")
		c.oneOf(m["state"], "state", "up", "draining")
		c.str(m["instance"], "instance", 1, 128)
		c.integer(m["ttl_ms"], "ttl_ms", 1000, 600000, "")
		c.number(m["ts"], "ts", 0, maxTimeMs, "")
	}
	return m
}
