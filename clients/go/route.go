package lars

// agentRoute is an agent's model of one route (actors/agent-route.ts): the
// hosts it picks from, kept as the same objects (with their feedback) while
// the route names them, and the pick strategy over them.
type agentRoute struct {
	modid, cmdid uint32
	owner        *followed // the followed route, carried in pick results
	agentID      string
	override     string
	mk           func(name string) strategy
	hosts        []*pickHost
	byKey        map[string]*pickHost
	strategy     strategy
	strategyName string
	weighsLoad   bool
}

func newAgentRoute(agentID, override string, mk func(string) strategy) *agentRoute {
	name := override
	if name == "" {
		name = StrategyP2cEwma
	}
	return &agentRoute{agentID: agentID, override: override, mk: mk, byKey: map[string]*pickHost{}, strategy: mk(name), strategyName: name, weighsLoad: weighsLoad(name)}
}

// trialWeight: a probing host whose trial calls are another agent's is picked with weight 0.
func trialWeight(h *RouteHost, agentID string) float64 {
	if h.TrialAgent != "" && h.TrialAgent != agentID && h.State == StateProbing {
		return 0
	}
	return h.PickWeight
}

func (a *pickHost) take(h *RouteHost, agentID string) {
	a.pickWeight = trialWeight(h, agentID)
	a.state = h.State
	a.reason = h.Reason
	a.probing = h.State == StateProbing
	a.weight = h.Weight
	a.zone = h.Zone
}

func hostKey(ip string, port int) string { return ip + ":" + itoa(port) }

func itoa(n int) string {
	if n == 0 {
		return "0"
	}
	var b [20]byte
	i := len(b)
	neg := n < 0
	if neg {
		n = -n
	}
	for n > 0 {
		i--
		b[i] = byte('0' + n%10)
		n /= 10
	}
	if neg {
		i--
		b[i] = '-'
	}
	return string(b[i:])
}

// apply takes a new state of the route (states arrive in order of versions).
func (r *agentRoute) apply(s *RouteState) {
	next := r.hosts
	same := len(next) == len(s.Hosts)
	for i := 0; same && i < len(next); i++ {
		same = next[i].ip == s.Hosts[i].IP && next[i].port == s.Hosts[i].Port
	}
	if same {
		for i := range next {
			next[i].take(&s.Hosts[i], r.agentID)
		}
	} else {
		next = make([]*pickHost, 0, len(s.Hosts))
		byKey := make(map[string]*pickHost, len(s.Hosts))
		for i := range s.Hosts {
			h := &s.Hosts[i]
			key := hostKey(h.IP, h.Port)
			ah := r.byKey[key]
			if ah == nil {
				ah = &pickHost{ip: h.IP, port: h.Port, key: key}
				ah.result = Host{IP: h.IP, Port: h.Port, Modid: r.modid, Cmdid: r.cmdid, h: ah, r: r.owner}
			}
			ah.take(h, r.agentID)
			next = append(next, ah)
			byKey[key] = ah
		}
		r.hosts, r.byKey = next, byKey
	}
	name := r.override
	if name == "" {
		name = s.Strategy
	}
	if name == "" {
		name = StrategyP2cEwma
	}
	if name != r.strategyName {
		r.strategyName = name
		r.strategy = r.mk(name)
		r.weighsLoad = weighsLoad(name)
	}
	r.strategy.update(pickView{hosts: next, panic: s.Panic, probeNum: s.ProbeNum})
}

// pickAt is a pick as the agent makes it: the strategy's answer, the trial
// bound of probing hosts, and the call counted in flight. -1: no host.
func (r *agentRoute) pickAt(key string, hasKey bool, now func() float64, fb feedbackOptions, probeTrials int) int {
	first := r.strategy.pick(key, hasKey)
	if first < 0 {
		return -1
	}
	h := r.hosts[first]
	if h.inflight > 0 && !r.weighsLoad && !h.probing {
		h.inflight++ // the usual case: a count, no clock
		return first
	}
	i := boundTrials(r.strategy, r.hosts, key, hasKey, first, now, probeTrials, fb.timeoutMs)
	if i < 0 {
		return -1
	}
	notePick(r.hosts[i], now, fb, r.weighsLoad)
	return i
}
