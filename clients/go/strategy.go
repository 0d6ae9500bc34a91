package lars

import "math"

// The pick strategies, as actors/strategies/ defines them: pure, no clock of
// their own, no I/O. A route holds one instance; update is called with every
// new route state, pick on every GetHost. Not safe for concurrent use: the
// agent holds the route's lock around both.

// pickHost is a host as a strategy sees it; the agent keeps its feedback fields current.
type pickHost struct {
	ip         string
	port       int
	key        string // ip:port
	pickWeight float64
	state      string
	reason     string
	probing    bool
	weight     int
	zone       string
	// feedback (feedback.go)
	latencyMs  float64
	inflight   int
	latencyTs  float64
	hasLatTs   bool
	pendingSum float64
	lifeTs     float64
	hasLifeTs  bool
	result     Host
}

type pickView struct {
	hosts    []*pickHost
	panic    bool
	probeNum int
}

type strategy interface {
	name() string
	update(v pickView)
	// pick returns an index into the view's hosts, or -1.
	pick(key string, hasKey bool) int
}

// strategyOptions is what every strategy may take.
type strategyOptions struct {
	random    Random
	now       func() float64
	decayMs   float64
	timeoutMs float64
}

func createStrategy(name string, o strategyOptions) strategy {
	switch name {
	case StrategySwrr:
		return newSwrr(o.random, 0, swrrMaxPeriod)
	case StrategyP2c:
		return newP2c(o)
	case StrategyHash:
		return newHash(o.random)
	case StrategyLars:
		return newLars()
	default:
		return newP2cEwma(o)
	}
}

// weighsLoad: the strategy's picks read the hosts' calls in flight and their age.
func weighsLoad(name string) bool { return name == StrategyP2c || name == StrategyP2cEwma }

func isPickable(w float64) bool { return w > 0 && !math.IsInf(w, 0) && !math.IsNaN(w) }

// positiveHosts: indices and weights of the hosts with a positive pick weight.
func positiveHosts(hosts []*pickHost) ([]int32, []float64) {
	idx := make([]int32, 0, len(hosts))
	ws := make([]float64, 0, len(hosts))
	for i, h := range hosts {
		if isPickable(h.pickWeight) {
			idx = append(idx, int32(i))
			ws = append(ws, h.pickWeight)
		}
	}
	return idx, ws
}

func hostKeys(hosts []*pickHost) []string {
	out := make([]string, len(hosts))
	for i, h := range hosts {
		out[i] = h.key
	}
	return out
}

func sameHostSet(keys []string, hosts []*pickHost) bool {
	if len(keys) != len(hosts) {
		return false
	}
	for i, k := range keys {
		if k != hosts[i].key {
			return false
		}
	}
	return true
}

func sameWeights(ai []int32, aw []float64, bi []int32, bw []float64) bool {
	if len(ai) != len(bi) {
		return false
	}
	for i := range ai {
		if ai[i] != bi[i] || aw[i] != bw[i] {
			return false
		}
	}
	return true
}
