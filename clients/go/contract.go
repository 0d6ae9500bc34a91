package lars

// The contract's messages an agent reads and writes (schemas/README.md):
// RouteState (read from the route subjects and the routes bucket),
// ReportBatch (written; read by the conformance tests), SelfRegistration
// (written by Register). Field names are the wire's.

// Host states of a route's host.
const (
	StateHealthy    = "healthy"
	StateOverloaded = "overloaded"
	StateProbing    = "probing"
	StateDraining   = "draining"
)

// Pick strategies (the contract's names).
const (
	StrategyLars    = "lars"
	StrategySwrr    = "swrr"
	StrategyP2c     = "p2c"
	StrategyP2cEwma = "p2c_ewma"
	StrategyHash    = "hash"
)

// Retcodes with a meaning of their own (any other non-zero retcode is an error, as in Lars).
const (
	RetcodeOK = 0
	// RetcodeOverloaded: the host refused the call because it is overloaded
	// (HTTP 503 with Retry-After, gRPC RESOURCE_EXHAUSTED); it counts against
	// the route's accept ratio like any error.
	RetcodeOverloaded = -4
)

// AttemptKind is what one call of a logical call was, in a batch's attempt marks.
type AttemptKind int

const (
	AttemptFirst AttemptKind = 0
	// AttemptRetry: sent to another host after a failed attempt.
	AttemptRetry AttemptKind = 1
	// AttemptHedge: sent while an earlier attempt is still outstanding (the first answer wins).
	AttemptHedge AttemptKind = 2
)

// AttemptMark marks a report that was not a first attempt: [report_index, attempt, kind].
type AttemptMark struct {
	ReportIndex int
	// Attempt: 2 for the second attempt of a logical call, ... (at most 255)
	Attempt int
	Kind    AttemptKind
}

// RouteHost is one host of a route state.
type RouteHost struct {
	IP         string  `json:"ip"`
	Port       int     `json:"port"`
	Weight     int     `json:"weight"`
	Zone       string  `json:"zone,omitempty"` // "" when absent or nil
	State      string  `json:"state"`
	Reason     string  `json:"reason"`
	Since      float64 `json:"since"`
	PickWeight float64 `json:"pick_weight"`
	TrialAgent string  `json:"trial_agent,omitempty"`
}

// RouteState is the full effective state of one route, as its owning node publishes it.
type RouteState struct {
	V        int     `json:"v"`
	Sender   string  `json:"sender"`
	Modid    uint32  `json:"modid"`
	Cmdid    uint32  `json:"cmdid"`
	Version  uint64  `json:"version"`
	Ts       float64 `json:"ts"`
	Profile  string  `json:"profile"`
	Panic    bool    `json:"panic"`
	Removed  bool    `json:"removed"`
	ProbeNum int     `json:"probe_num"`
	Strategy string  `json:"strategy,omitempty"` // "" when absent
	// The route's call policy, each nil when absent (the node computes no budgets, no hedging, not shedding):
	// RetryBudget: retries an agent may add per first attempt of the route, over the route's sliding window.
	RetryBudget *float64 `json:"retry_budget,omitempty"`
	// RetryFloor: retries per second an agent may make whatever its first attempts.
	RetryFloor *float64 `json:"retry_floor,omitempty"`
	// HedgeDelayMs: an idempotent call without an answer after this long may be hedged to another host.
	HedgeDelayMs *float64 `json:"hedge_delay_ms,omitempty"`
	// HedgeBudget: hedges an agent may add per first attempt of the route, over the sliding window.
	HedgeBudget *float64 `json:"hedge_budget,omitempty"`
	// Shed: the share of new calls an agent refuses locally (client-side adaptive throttling); 0 or nil: not shedding.
	Shed  *float64    `json:"shed,omitempty"`
	Hosts []RouteHost `json:"hosts"`
}

// callPolicyKeys: the optional call policy fields of a route state and their upper bounds.
var callPolicyKeys = [...]struct {
	key string
	max float64
}{{"retry_budget", maxRetryBudget}, {"retry_floor", maxRetryFloor}, {"hedge_delay_ms", maxLatency}, {"hedge_budget", 1}, {"shed", 1}}

// policyField is the field of s that callPolicyKeys[i] names.
func (s *RouteState) policyField(i int) **float64 {
	switch i {
	case 0:
		return &s.RetryBudget
	case 1:
		return &s.RetryFloor
	case 2:
		return &s.HedgeDelayMs
	case 3:
		return &s.HedgeBudget
	}
	return &s.Shed
}

// DecodeRouteState decodes and checks a RouteState; a refusal is a *RejectError.
func DecodeRouteState(b []byte) (*RouteState, error) {
	if len(b) > maxMsgBytes {
		return nil, reject(RejectOversize, "message of %d bytes", len(b))
	}
	return decodeRouteStateInterned(b, nil)
}

// decodeRouteStateInterned is DecodeRouteState reusing the strings of intern (see fastReader.text).
func decodeRouteStateInterned(b []byte, intern map[string]string) (*RouteState, error) {
	if len(b) > maxMsgBytes {
		return nil, reject(RejectOversize, "message of %d bytes", len(b))
	}
	if s, ok := fastRouteStateInterned(b, intern); ok {
		return s, nil
	}
	return decodeRouteStateGeneral(b)
}

// decodeRouteStateGeneral: every value decoded, then checked (names the rejection of a refused state).
func decodeRouteStateGeneral(b []byte) (*RouteState, error) {
	return checked(b, "route state", (*checker).routeState)
}

func (c *checker) routeState(m map[string]any) *RouteState {
	if !c.required(m, "", "v", "sender", "modid", "cmdid", "version", "ts", "profile", "panic", "removed", "probe_num", "hosts") {
		return nil
	}
	s := &RouteState{V: 1}
	s.Sender, _ = c.str(m["sender"], "sender", 1, maxSender)
	modid, _ := c.integer(m["modid"], "modid", 0, maxUint32, "")
	cmdid, _ := c.integer(m["cmdid"], "cmdid", 0, maxUint32, "")
	version, _ := c.integer(m["version"], "version", 1, maxSafeInt, "")
	s.Modid, s.Cmdid, s.Version = uint32(modid), uint32(cmdid), uint64(version)
	s.Ts, _ = c.number(m["ts"], "ts", 0, maxTimeMs, "")
	s.Profile, _ = c.oneOf(m["profile"], "profile", "default", "lars")
	s.Panic = c.boolean(m["panic"], "panic")
	s.Removed = c.boolean(m["removed"], "removed")
	pn, _ := c.integer(m["probe_num"], "probe_num", 0, math_MaxFloat, "")
	s.ProbeNum = int(pn)
	if v, ok := m["strategy"]; ok {
		s.Strategy, _ = c.oneOf(v, "strategy", StrategyLars, StrategySwrr, StrategyP2c, StrategyP2cEwma, StrategyHash)
	}
	for i, k := range callPolicyKeys {
		if v, ok := m[k.key]; ok {
			if f, ok := c.number(v, k.key, 0, k.max, ""); ok {
				*s.policyField(i) = &f
			}
		}
	}
	hosts, ok := c.array(m["hosts"], "hosts", 0, maxHosts)
	if !ok {
		return s
	}
	s.Hosts = make([]RouteHost, len(hosts))
	for i, hv := range hosts {
		p := index("hosts", i)
		hm, ok := hv.(map[string]any)
		if !ok {
			c.fail(RejectWrongType, p, "expected map")
			break
		}
		c.routeHost(hm, p, &s.Hosts[i])
	}
	return s
}

const math_MaxFloat = 1.7976931348623157e308

func (c *checker) routeHost(m map[string]any, p string, h *RouteHost) {
	if !c.required(m, p, "ip", "port", "weight", "state", "reason", "since", "pick_weight") {
		return
	}
	h.IP, _ = c.ip(m["ip"], p+".ip")
	port, _ := c.integer(m["port"], p+".port", 1, 65535, "")
	w, _ := c.integer(m["weight"], p+".weight", minWeight, maxWeight, "")
	h.Port, h.Weight = int(port), int(w)
	h.Zone = c.zone(m, p+".zone")
	h.State, _ = c.oneOf(m["state"], p+".state", StateHealthy, StateOverloaded, StateProbing, StateDraining)
	h.Reason, _ = c.str(m["reason"], p+".reason", 0, maxReason)
	h.Since, _ = c.number(m["since"], p+".since", 0, maxTimeMs, "")
	h.PickWeight, _ = c.number(m["pick_weight"], p+".pick_weight", 0, maxWeight, "")
	if v, ok := m["trial_agent"]; ok {
		h.TrialAgent, _ = c.str(v, p+".trial_agent", 1, maxSender)
	}
}

// Report is one call result inside a batch: [host_index, retcode, latency_ms, offset_ms].
type Report struct {
	HostIndex int
	Retcode   int32
	LatencyMs float64
	OffsetMs  int
}

// ReportBatch is a batch of call results for one route.
type ReportBatch struct {
	Sender      string
	Modid       uint32
	Cmdid       uint32
	Ts          float64
	Zone        string // "" when absent or nil
	Hosts       []HostAddr
	Reports     []Report
	Utilization map[int]float64 // by host index; nil when absent
	// Attempts: the marks of the reports that were not first attempts; nil when absent
	Attempts []AttemptMark
}

// HostAddr is a host's address.
type HostAddr struct {
	IP   string
	Port int
}

// DecodeReportBatch decodes and checks a ReportBatch (the route nodes' and the sink's reading).
func DecodeReportBatch(b []byte) (*ReportBatch, error) {
	if len(b) > maxMsgBytes {
		return nil, reject(RejectOversize, "message of %d bytes", len(b))
	}
	return checked(b, "batch", (*checker).reportBatch)
}

func (c *checker) reportBatch(m map[string]any) *ReportBatch {
	if !c.required(m, "", "v", "sender", "modid", "cmdid", "ts", "hosts", "reports") {
		return nil
	}
	rb := &ReportBatch{}
	rb.Sender, _ = c.str(m["sender"], "sender", 1, maxSender)
	modid, _ := c.integer(m["modid"], "modid", 0, maxUint32, "")
	cmdid, _ := c.integer(m["cmdid"], "cmdid", 0, maxUint32, "")
	rb.Modid, rb.Cmdid = uint32(modid), uint32(cmdid)
	rb.Ts, _ = c.number(m["ts"], "ts", 0, maxTimeMs, "")
	rb.Zone = c.zone(m, "zone")
	if hosts, ok := c.array(m["hosts"], "hosts", 1, maxHosts); ok {
		for i, hv := range hosts {
			p := index("hosts", i)
			t, ok := c.tuple(hv, p, 2)
			if !ok {
				break
			}
			ip, _ := c.ip(t[0], p+"[0]")
			port, _ := c.integer(t[1], p+"[1]", 1, 65535, "")
			rb.Hosts = append(rb.Hosts, HostAddr{ip, int(port)})
		}
	}
	if reports, ok := c.array(m["reports"], "reports", 1, maxReports); ok {
		for i, rv := range reports {
			p := index("reports", i)
			t, ok := c.tuple(rv, p, 4)
			if !ok {
				break
			}
			hi, _ := c.integer(t[0], p+"[0]", 0, math_MaxFloat, RejectOutOfRange)
			rc, _ := c.integer(t[1], p+"[1]", minRetcode, maxRetcode, RejectOutOfRange)
			lat, _ := c.number(t[2], p+"[2]", 0, maxLatency, RejectOutOfRange)
			off, _ := c.integer(t[3], p+"[3]", 0, maxOffset, RejectOutOfRange)
			rb.Reports = append(rb.Reports, Report{int(hi), int32(rc), lat, int(off)})
		}
	}
	if uv, ok := m["utilization"]; ok {
		if util, ok := c.array(uv, "utilization", 0, maxHosts); ok {
			rb.Utilization = map[int]float64{}
			for i, pv := range util {
				p := index("utilization", i)
				t, ok := c.tuple(pv, p, 2)
				if !ok {
					break
				}
				hi, _ := c.integer(t[0], p+"[0]", 0, math_MaxFloat, RejectOutOfRange)
				u, _ := c.number(t[1], p+"[1]", 0, 1, RejectOutOfRange)
				rb.Utilization[int(hi)] = u
			}
		}
	}
	if av, ok := m["attempts"]; ok {
		if marks, ok := c.array(av, "attempts", 0, maxReports); ok {
			rb.Attempts = []AttemptMark{}
			for i, mv := range marks {
				p := index("attempts", i)
				t, ok := c.tuple(mv, p, 3)
				if !ok {
					break
				}
				ri, _ := c.integer(t[0], p+"[0]", 0, math_MaxFloat, RejectOutOfRange)
				at, _ := c.integer(t[1], p+"[1]", 1, maxAttempt, RejectOutOfRange)
				// the kind is one of three literals: anything else, of any type, is out of range
				k, ok := t[2].(float64)
				if !ok || (k != 0 && k != 1 && k != 2) {
					c.fail(RejectOutOfRange, p+"[2]", "expected 0, 1 or 2")
					break
				}
				rb.Attempts = append(rb.Attempts, AttemptMark{int(ri), int(at), AttemptKind(k)})
			}
		}
	}
	if c.err != nil {
		return rb
	}
	// the rule beyond the schema: every host index points into hosts
	for i, r := range rb.Reports {
		if r.HostIndex >= len(rb.Hosts) {
			c.fail(RejectOutOfRange, index("reports", i)+"[0]", "host index past the batch's hosts")
			return rb
		}
	}
	for hi := range rb.Utilization {
		if hi >= len(rb.Hosts) {
			c.fail(RejectOutOfRange, "utilization", "host index past the batch's hosts")
			return rb
		}
	}
	// and every report index of an attempt mark into reports
	for i, a := range rb.Attempts {
		if a.ReportIndex >= len(rb.Reports) {
			c.fail(RejectOutOfRange, index("attempts", i)+"[0]", "report index past the batch's reports")
			return rb
		}
	}
	return rb
}

// Encode writes the batch as the reference agent does, byte for byte:
// v, sender, modid, cmdid, ts, hosts, reports, then zone, utilization and attempts when set.
func (rb *ReportBatch) Encode(dst []byte) []byte {
	w := mpWriter{b: dst}
	n := 7
	if rb.Zone != "" {
		n++
	}
	if len(rb.Utilization) > 0 {
		n++
	}
	if len(rb.Attempts) > 0 {
		n++
	}
	w.mapHeader(n)
	w.str("v")
	w.int(1)
	w.str("sender")
	w.str(rb.Sender)
	w.str("modid")
	w.int(int64(rb.Modid))
	w.str("cmdid")
	w.int(int64(rb.Cmdid))
	w.str("ts")
	w.num(rb.Ts)
	w.str("hosts")
	w.arrayHeader(len(rb.Hosts))
	for _, h := range rb.Hosts {
		w.arrayHeader(2)
		w.str(h.IP)
		w.int(int64(h.Port))
	}
	w.str("reports")
	w.arrayHeader(len(rb.Reports))
	for _, r := range rb.Reports {
		w.arrayHeader(4)
		w.int(int64(r.HostIndex))
		w.int(int64(r.Retcode))
		w.num(r.LatencyMs)
		w.int(int64(r.OffsetMs))
	}
	if rb.Zone != "" {
		w.str("zone")
		w.str(rb.Zone)
	}
	if len(rb.Utilization) > 0 {
		w.str("utilization")
		w.arrayHeader(len(rb.Utilization))
		for hi := 0; hi < len(rb.Hosts); hi++ {
			if u, ok := rb.Utilization[hi]; ok {
				w.arrayHeader(2)
				w.int(int64(hi))
				w.num(u)
			}
		}
	}
	if len(rb.Attempts) > 0 {
		w.str("attempts")
		w.arrayHeader(len(rb.Attempts))
		for _, a := range rb.Attempts {
			w.arrayHeader(3)
			w.int(int64(a.ReportIndex))
			w.int(int64(a.Attempt))
			w.int(int64(a.Kind))
		}
	}
	return w.b
}

// encodeRouteState writes a RouteState (tests and benchmarks: agents never publish one).
func encodeRouteState(s *RouteState) []byte {
	w := mpWriter{}
	n := 11
	if s.Strategy != "" {
		n++
	}
	for i := range callPolicyKeys {
		if *s.policyField(i) != nil {
			n++
		}
	}
	w.mapHeader(n)
	w.str("v")
	w.int(1)
	w.str("sender")
	w.str(s.Sender)
	w.str("modid")
	w.int(int64(s.Modid))
	w.str("cmdid")
	w.int(int64(s.Cmdid))
	w.str("version")
	w.num(float64(s.Version))
	w.str("ts")
	w.num(s.Ts)
	w.str("profile")
	w.str(s.Profile)
	w.str("panic")
	w.bool(s.Panic)
	w.str("removed")
	w.bool(s.Removed)
	w.str("probe_num")
	w.int(int64(s.ProbeNum))
	if s.Strategy != "" {
		w.str("strategy")
		w.str(s.Strategy)
	}
	for i, k := range callPolicyKeys {
		if f := *s.policyField(i); f != nil {
			w.str(k.key)
			w.num(*f)
		}
	}
	w.str("hosts")
	w.arrayHeader(len(s.Hosts))
	for i := range s.Hosts {
		h := &s.Hosts[i]
		m := 7
		if h.Zone != "" {
			m++
		}
		if h.TrialAgent != "" {
			m++
		}
		w.mapHeader(m)
		w.str("ip")
		w.str(h.IP)
		w.str("port")
		w.int(int64(h.Port))
		w.str("weight")
		w.int(int64(h.Weight))
		if h.Zone != "" {
			w.str("zone")
			w.str(h.Zone)
		}
		w.str("state")
		w.str(h.State)
		w.str("reason")
		w.str(h.Reason)
		w.str("since")
		w.num(h.Since)
		w.str("pick_weight")
		w.num(h.PickWeight)
		if h.TrialAgent != "" {
			w.str("trial_agent")
			w.str(h.TrialAgent)
		}
	}
	return w.b
}
