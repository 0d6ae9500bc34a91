package lars

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/balancer"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/resolver"
	"google.golang.org/grpc/status"
)

// gRPC through grpc-go: a resolver for targets lars:///<modid>.<cmdid> (or
// lars:///<modid>/<cmdid>, the TypeScript form) that feeds the channel the
// route's pickable hosts and follows the route's changes, and a balancer,
// "lars", whose picker asks the agent for the host of every call (so the
// route's strategy, ejections and trial rules apply per call) and reports
// each call's status and latency when it ends, classified as the TypeScript
// gRPC integration classifies it (src/integrations/grpc.ts, outcome.ts).
//
//	conn, err := grpc.Dial("lars:///7.1", grpc.WithInsecure(), lars.GRPCDialOption(agent, lars.GRPCOptions{}))
//
// The resolver hands the channel a service config selecting the balancer,
// so the target alone is enough. Outgoing metadata "lars-key" is the key
// of a call for the hash strategy. A picked host whose connection failed is
// reported as a connection error (RetcodeConnection) and another host is
// picked, up to 3 times per call. A call with no host to go to fails with
// UNAVAILABLE, or waits when it is wait-for-ready (grpc.WaitForReady).

const (
	// GRPCScheme is the resolver's URI scheme.
	GRPCScheme = "lars"
	// GRPCBalancerName is the balancer's registered name.
	GRPCBalancerName = "lars"
	// GRPCKeyMetadata is the outgoing metadata key whose value is a call's hash key.
	GRPCKeyMetadata  = "lars-key"
	grpcPickAttempts = 3
)

// DefaultGRPCFailureCodes are the statuses that count as a host's failure
// unless GRPCOptions.FailureCodes says otherwise.
var DefaultGRPCFailureCodes = []codes.Code{codes.Unavailable, codes.DeadlineExceeded, codes.ResourceExhausted, codes.Internal, codes.Unknown}

// GRPCOptions: what counts as a failure. The zero value is the TypeScript integration's default.
type GRPCOptions struct {
	// FailureCodes: statuses reported as failures, the code being the retcode (nil: DefaultGRPCFailureCodes).
	FailureCodes []codes.Code
	// Slow: a success (or a status that is no failure) slower than this is reported as RetcodeSlow (0: never).
	Slow time.Duration
	// IgnoreConnectionErrors: a picked host that cannot be reached is not reported as failing.
	IgnoreConnectionErrors bool
}

type grpcPolicy struct {
	failure [17]bool
	slow    time.Duration
	connRet int32
}

func newGRPCPolicy(o GRPCOptions) grpcPolicy {
	p := grpcPolicy{slow: o.Slow, connRet: RetcodeConnection}
	if o.IgnoreConnectionErrors {
		p.connRet = 0
	}
	fc := o.FailureCodes
	if fc == nil {
		fc = DefaultGRPCFailureCodes
	}
	for _, c := range fc {
		if c > 0 && int(c) < len(p.failure) {
			p.failure[c] = true
		}
	}
	return p
}

// retcode of a call that ended with err (nil: OK) after lat.
func (p *grpcPolicy) retcode(err error, lat time.Duration) int32 {
	c := status.Code(err)
	if c > 0 && int(c) < len(p.failure) && p.failure[c] {
		return int32(c)
	}
	if p.slow > 0 && lat > p.slow {
		return RetcodeSlow
	}
	return 0
}

// GRPCClassify is the classification of gRPC failures for Call (the
// TypeScript gRPC caller's, src/integrations/grpc-call.ts): UNAVAILABLE (the
// host is away) is retried on another host, RESOURCE_EXHAUSTED is reported as
// overloaded (RetcodeOverloaded) and retried, DEADLINE_EXCEEDED (and the
// attempt's own timeout) is a timeout and retried; any other status is
// reported as opts say (its code when a failure, else 0) and not retried; an
// error that is no gRPC status is RetcodeError, not retried.
func GRPCClassify(opts GRPCOptions) func(error) Classified {
	p := newGRPCPolicy(opts)
	return func(err error) Classified {
		if errors.Is(err, context.DeadlineExceeded) {
			return Classified{RetcodeTimeout, true}
		}
		st, ok := status.FromError(err)
		if !ok {
			return Classified{RetcodeError, false}
		}
		switch st.Code() {
		case codes.Unavailable:
			return Classified{int32(codes.Unavailable), true}
		case codes.ResourceExhausted:
			return Classified{RetcodeOverloaded, true}
		case codes.DeadlineExceeded:
			return Classified{RetcodeTimeout, true}
		}
		return Classified{p.retcode(err, 0), false}
	}
}

var registerBalancer sync.Once

// GRPCResolver returns the resolver of lars:/// targets, following routes
// through agent; pass it to grpc.WithResolvers (or use GRPCDialOption).
// It also registers the "lars" balancer with grpc-go (once per process; the
// balancer holds nothing global: each channel's agent comes from its resolver).
func GRPCResolver(agent *Agent, opts GRPCOptions) resolver.Builder {
	registerBalancer.Do(func() { balancer.Register(grpcBalancerBuilder{}) })
	return &grpcResolverBuilder{agent: agent, policy: newGRPCPolicy(opts)}
}

// GRPCDialOption is grpc.WithResolvers(GRPCResolver(agent, opts)).
func GRPCDialOption(agent *Agent, opts GRPCOptions) grpc.DialOption {
	return grpc.WithResolvers(GRPCResolver(agent, opts))
}

// ParseGRPCTarget reads the route of a lars:/// target's endpoint: "<modid>.<cmdid>" or "<modid>/<cmdid>".
func ParseGRPCTarget(endpoint string) (modid, cmdid uint32, err error) {
	e := strings.Trim(endpoint, "/")
	i := strings.IndexAny(e, "./")
	bad := fmt.Errorf("lars: not a lars:///<modid>.<cmdid> target: %q", endpoint)
	if i <= 0 {
		return 0, 0, bad
	}
	m, err1 := strconv.ParseUint(e[:i], 10, 32)
	c, err2 := strconv.ParseUint(e[i+1:], 10, 32)
	if err1 != nil || err2 != nil {
		return 0, 0, bad
	}
	return uint32(m), uint32(c), nil
}

// grpcBinding travels from the resolver to the balancer in the resolver state's attributes.
type grpcBinding struct {
	agent        *Agent
	modid, cmdid uint32
	policy       *grpcPolicy
}

type grpcBindingKey struct{}

var errNoLarsResolver = errors.New("lars: the lars balancer needs a lars:/// target (GRPCResolver)")
