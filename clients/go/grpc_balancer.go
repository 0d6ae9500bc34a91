package lars

import (
	"errors"
	"fmt"
	"sync"
	"time"

	"google.golang.org/grpc/balancer"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/resolver"
)

// The "lars" balancer: one SubConn per host the resolver gave, and a picker
// that lets the agent choose among them per call.

type grpcBalancerBuilder struct{}

func (grpcBalancerBuilder) Name() string { return GRPCBalancerName }

func (grpcBalancerBuilder) Build(cc balancer.ClientConn, _ balancer.BuildOptions) balancer.Balancer {
	return &grpcBalancer{cc: cc, byAddr: map[string]balancer.SubConn{}, subConns: map[balancer.SubConn]*grpcSubConn{}}
}

type grpcSubConn struct {
	addr  string
	state connectivity.State
}

type grpcBalancer struct {
	cc       balancer.ClientConn
	mu       sync.Mutex // grpc-go calls the balancer from one goroutine; the lock keeps that an assumption we do not need
	binding  *grpcBinding
	byAddr   map[string]balancer.SubConn
	subConns map[balancer.SubConn]*grpcSubConn
	lastErr  error
}

func (b *grpcBalancer) UpdateClientConnState(s balancer.ClientConnState) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	var binding *grpcBinding
	if s.ResolverState.Attributes != nil {
		binding, _ = s.ResolverState.Attributes.Value(grpcBindingKey{}).(*grpcBinding)
	}
	if binding == nil {
		b.lastErr = errNoLarsResolver
		b.publish()
		return balancer.ErrBadResolverState
	}
	b.binding = binding
	seen := make(map[string]bool, len(s.ResolverState.Addresses))
	for _, a := range s.ResolverState.Addresses {
		seen[a.Addr] = true
		if _, ok := b.byAddr[a.Addr]; ok {
			continue
		}
		sc, err := b.cc.NewSubConn([]resolver.Address{a}, balancer.NewSubConnOptions{})
		if err != nil {
			continue
		}
		b.byAddr[a.Addr] = sc
		b.subConns[sc] = &grpcSubConn{addr: a.Addr, state: connectivity.Idle}
		sc.Connect()
	}
	for addr, sc := range b.byAddr {
		if !seen[addr] {
			// its Shutdown state, which follows, drops it from subConns
			b.cc.RemoveSubConn(sc)
			delete(b.byAddr, addr)
		}
	}
	if len(s.ResolverState.Addresses) == 0 {
		b.lastErr = fmt.Errorf("lars: route %d.%d has no host to call", binding.modid, binding.cmdid)
		b.publish()
		return balancer.ErrBadResolverState
	}
	b.lastErr = nil
	b.publish()
	return nil
}

func (b *grpcBalancer) ResolverError(err error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.lastErr = err
	if len(b.byAddr) == 0 {
		b.publish()
	}
}

func (b *grpcBalancer) UpdateSubConnState(sc balancer.SubConn, s balancer.SubConnState) {
	b.mu.Lock()
	defer b.mu.Unlock()
	e, ok := b.subConns[sc]
	if !ok {
		return
	}
	if s.ConnectivityState == connectivity.Shutdown {
		delete(b.subConns, sc)
		return
	}
	e.state = s.ConnectivityState
	if e.state == connectivity.Idle {
		sc.Connect()
	}
	b.publish()
}

func (b *grpcBalancer) Close() {}

// publish gives the channel its state and a picker from the SubConns' states: READY when any host is.
func (b *grpcBalancer) publish() {
	if b.binding == nil || len(b.byAddr) == 0 {
		err := b.lastErr
		if err == nil {
			err = errors.New("lars: no host to call")
		}
		b.cc.UpdateState(balancer.State{ConnectivityState: connectivity.TransientFailure, Picker: errPicker{err}})
		return
	}
	hosts := make(map[string]grpcPickTarget, len(b.byAddr))
	ready, connecting := false, false
	for addr, sc := range b.byAddr {
		st := b.subConns[sc].state
		hosts[addr] = grpcPickTarget{sc: sc, state: st}
		switch st {
		case connectivity.Ready:
			ready = true
		case connectivity.Idle, connectivity.Connecting:
			connecting = true
		}
	}
	switch {
	case ready:
		b.cc.UpdateState(balancer.State{ConnectivityState: connectivity.Ready, Picker: &grpcPicker{binding: b.binding, hosts: hosts}})
	case connecting:
		b.cc.UpdateState(balancer.State{ConnectivityState: connectivity.Connecting, Picker: errPicker{balancer.ErrNoSubConnAvailable}})
	default:
		b.cc.UpdateState(balancer.State{ConnectivityState: connectivity.TransientFailure, Picker: errPicker{balancer.ErrTransientFailure}})
	}
}

// errPicker: the error is no status, so that grpc-go fails a call with
// UNAVAILABLE, or keeps a wait-for-ready call waiting for the next picker.
type errPicker struct{ err error }

func (p errPicker) Pick(balancer.PickInfo) (balancer.PickResult, error) {
	return balancer.PickResult{}, p.err
}

type grpcPickTarget struct {
	sc    balancer.SubConn
	state connectivity.State
}

// grpcPicker: a snapshot of the SubConns' states; the agent chooses the host.
type grpcPicker struct {
	binding *grpcBinding
	hosts   map[string]grpcPickTarget
}

func (p *grpcPicker) Pick(info balancer.PickInfo) (balancer.PickResult, error) {
	b := p.binding
	key, hasKey := "", false
	if md, ok := metadata.FromOutgoingContext(info.Ctx); ok {
		if v := md.Get(GRPCKeyMetadata); len(v) > 0 {
			key, hasKey = v[0], true
		}
	}
	queued := false
	for attempt := 0; attempt < grpcPickAttempts; attempt++ {
		var h Host
		var err error
		if hasKey {
			h, err = b.agent.GetHostKey(info.Ctx, b.modid, b.cmdid, key)
		} else {
			h, err = b.agent.GetHost(info.Ctx, b.modid, b.cmdid)
		}
		if err != nil {
			return balancer.PickResult{}, fmt.Errorf("lars: route %d.%d: %w", b.modid, b.cmdid, err)
		}
		t, ok := p.hosts[h.String()]
		switch {
		case ok && t.state == connectivity.Ready:
			start := time.Now()
			var once sync.Once
			return balancer.PickResult{SubConn: t.sc, Done: func(d balancer.DoneInfo) {
				once.Do(func() {
					if d.Err == nil && !d.BytesSent {
						// grpc-go found the transport gone before sending and picks again: no call went out
						b.agent.Release(h)
						return
					}
					lat := time.Since(start)
					_ = b.agent.Report(h, b.policy.retcode(d.Err, lat), lat)
				})
			}}, nil
		case ok && t.state == connectivity.TransientFailure:
			// the agent's choice cannot be reached: that is the host's failure
			_ = b.agent.Report(h, b.policy.connRet, 0)
		case ok:
			// still connecting: nothing is known of the host yet; no call went out, so the pick is given back and the call waits
			b.agent.Release(h)
			queued = true
		default:
			// a host the channel has not been given yet (the resolver follows the same route): pick again
			b.agent.Release(h)
		}
	}
	if queued {
		return balancer.PickResult{}, balancer.ErrNoSubConnAvailable
	}
	return balancer.PickResult{}, fmt.Errorf("lars: route %d.%d: no reachable host after %d picks", b.modid, b.cmdid, grpcPickAttempts)
}
