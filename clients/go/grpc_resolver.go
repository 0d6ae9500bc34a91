package lars

import (
	"context"
	"fmt"
	"net"
	"strconv"

	"google.golang.org/grpc/attributes"
	"google.golang.org/grpc/resolver"
)

// The lars:/// resolver: one goroutine per channel reads the route's Watch
// and hands every state's hosts to the channel.

const grpcServiceConfig = `{"loadBalancingConfig":[{"` + GRPCBalancerName + `":{}}]}`

type grpcResolverBuilder struct {
	agent  *Agent
	policy grpcPolicy
}

func (b *grpcResolverBuilder) Scheme() string { return GRPCScheme }

func (b *grpcResolverBuilder) Build(target resolver.Target, cc resolver.ClientConn, _ resolver.BuildOptions) (resolver.Resolver, error) {
	modid, cmdid, err := ParseGRPCTarget(target.Endpoint)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	ch, err := b.agent.Watch(ctx, modid, cmdid)
	if err != nil {
		cancel()
		return nil, err
	}
	r := &grpcResolver{cc: cc, cancel: cancel, done: make(chan struct{})}
	binding := &grpcBinding{agent: b.agent, modid: modid, cmdid: cmdid, policy: &b.policy}
	attrs := attributes.New(grpcBindingKey{}, binding)
	sc := cc.ParseServiceConfig(grpcServiceConfig)
	go func() {
		// a route that does not load (not registered) fails the channel's calls instead of leaving them waiting
		if _, err := b.agent.Route(ctx, modid, cmdid); err != nil && ctx.Err() == nil {
			cc.ReportError(fmt.Errorf("lars: route %d.%d: %w", modid, cmdid, err))
		}
	}()
	go func() {
		defer close(r.done)
		for s := range ch {
			cc.UpdateState(resolver.State{Addresses: grpcAddresses(&s, b.agent.id), ServiceConfig: sc, Attributes: attrs})
		}
	}()
	return r, nil
}

// grpcAddresses: the hosts this agent may pick (all of them in panic mode, where the strategy may pick any).
func grpcAddresses(s *RouteState, agentID string) []resolver.Address {
	if s.Removed {
		return nil
	}
	out := make([]resolver.Address, 0, len(s.Hosts))
	for i := range s.Hosts {
		h := &s.Hosts[i]
		if s.Panic || trialWeight(h, agentID) > 0 {
			out = append(out, resolver.Address{Addr: net.JoinHostPort(h.IP, strconv.Itoa(h.Port))})
		}
	}
	return out
}

type grpcResolver struct {
	cc     resolver.ClientConn
	cancel context.CancelFunc
	done   chan struct{}
}

// ResolveNow: the route's states arrive by themselves; nothing to ask.
func (r *grpcResolver) ResolveNow(resolver.ResolveNowOptions) {}

// Close stops following the route for this channel and waits for the last update to be handed over.
func (r *grpcResolver) Close() {
	r.cancel()
	<-r.done
}
