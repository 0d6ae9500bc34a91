package lars

import "math"

// The call policy an agent enforces on its own, with no network hop
// (actors/agent-budget.ts, actors/call-decide.ts): over the agent's sliding
// window (one-second slots) its retries stay within RetryBudget × its first
// attempts + RetryFloor × the window, its hedges within HedgeBudget × its
// first attempts, and while the route sheds it refuses that share of new
// calls. The figures come with the route state; a state without them leaves
// the defaults.

// CallPolicy is what an agent enforces for a route: a route state's call policy fields, or the defaults.
type CallPolicy struct {
	RetryBudget float64
	RetryFloor  float64
	// HedgeDelayMs: nil, no hedging.
	HedgeDelayMs *float64
	HedgeBudget  float64
	Shed         float64
}

// The defaults without a route's figures: 10 % retries plus 3 per second
// (as if this agent were the route's only caller), no hedging (no latency
// measured), a 5 % hedge budget, no shedding (actors/params.ts).
const (
	defaultRetryBudget = 0.1
	defaultRetryFloor  = 3
	defaultHedgeBudget = 0.05
	defaultMaxAttempts = 3
	agentWindowSec     = 10
	callSlotMs         = 1000
	budgetFirsts       = 0
	budgetRetries      = 1
	budgetHedges       = 2
	budgetFields       = 3
)

// PolicyOf is the policy a route state gives an agent (s nil: the defaults).
func PolicyOf(s *RouteState) CallPolicy {
	if s == nil || s.RetryBudget == nil {
		return CallPolicy{RetryBudget: defaultRetryBudget, RetryFloor: defaultRetryFloor, HedgeBudget: defaultHedgeBudget}
	}
	p := CallPolicy{RetryBudget: *s.RetryBudget, RetryFloor: defaultRetryFloor, HedgeDelayMs: s.HedgeDelayMs, HedgeBudget: defaultHedgeBudget}
	if s.RetryFloor != nil {
		p.RetryFloor = *s.RetryFloor
	}
	if s.HedgeBudget != nil {
		p.HedgeBudget = *s.HedgeBudget
	}
	if s.Shed != nil {
		p.Shed = *s.Shed
	}
	return p
}

// callBudget is one agent's counts of a route's first attempts, retries and
// hedges over its window (times in ms). Not safe for concurrent use.
type callBudget struct {
	slots     int
	counts    []float64
	head      int
	slotStart float64
	started   float64
}

func newCallBudget(now float64, windowSec float64) *callBudget {
	slots := int(math.Max(1, math.Ceil(windowSec)))
	return &callBudget{slots: slots, counts: make([]float64, slots*budgetFields), slotStart: now, started: now}
}

func (b *callBudget) advance(now float64) {
	elapsed := math.Floor((now - b.slotStart) / callSlotMs)
	if elapsed <= 0 {
		return
	}
	steps := int(math.Min(elapsed, float64(b.slots)))
	for i := 0; i < steps; i++ {
		b.head = (b.head + 1) % b.slots
		for f := 0; f < budgetFields; f++ {
			b.counts[b.head*budgetFields+f] = 0
		}
	}
	b.slotStart += elapsed * callSlotMs
}

func (b *callBudget) sum(field int) float64 {
	n := 0.0
	for i := field; i < len(b.counts); i += budgetFields {
		n += b.counts[i]
	}
	return n
}

// first: a logical call's first attempt was sent.
func (b *callBudget) first(now float64) {
	b.advance(now)
	b.counts[b.head*budgetFields+budgetFirsts]++
}

// takeRetry: whether one more retry fits the budget now; when it does, it is counted.
func (b *callBudget) takeRetry(p CallPolicy, now float64) bool {
	b.advance(now)
	span := math.Min(float64(b.slots), math.Max(1, (now-b.started)/callSlotMs))
	if b.sum(budgetRetries)+1 > p.RetryBudget*b.sum(budgetFirsts)+p.RetryFloor*span {
		return false
	}
	b.counts[b.head*budgetFields+budgetRetries]++
	return true
}

// takeHedge: whether one more hedge fits the budget now; when it does, it is counted.
func (b *callBudget) takeHedge(p CallPolicy, now float64) bool {
	b.advance(now)
	if p.HedgeDelayMs == nil || b.sum(budgetHedges)+1 > p.HedgeBudget*b.sum(budgetFirsts) {
		return false
	}
	b.counts[b.head*budgetFields+budgetHedges]++
	return true
}

func (b *callBudget) totals(now float64) (firsts, retries, hedges float64) {
	b.advance(now)
	return b.sum(budgetFirsts), b.sum(budgetRetries), b.sum(budgetHedges)
}

// afterFailureDecision: what follows a failed attempt.
type afterFailureDecision string

const (
	decideRetry        afterFailureDecision = "retry"
	decideWait         afterFailureDecision = "wait"
	decideNotRetriable afterFailureDecision = "not_retriable"
	decideAttempts     afterFailureDecision = "attempts"
	decideDeadline     afterFailureDecision = "deadline"
	decideBudget       afterFailureDecision = "budget"
)

// failedState is a call's state when one of its attempts failed.
type failedState struct {
	retriable       bool
	live, made, max int
	now, deadline   float64
}

// afterFailure: retry (counted in the budget when it fits), wait for an
// attempt still out, or stop. A non-retriable failure stops the call only
// when no attempt is still out.
func afterFailure(s failedState, b *callBudget, p CallPolicy) afterFailureDecision {
	switch {
	case !s.retriable && s.live > 0:
		return decideWait
	case !s.retriable:
		return decideNotRetriable
	case s.live > 0:
		return decideWait
	case s.made >= s.max:
		return decideAttempts
	case s.now >= s.deadline:
		return decideDeadline
	case !b.takeRetry(p, s.now):
		return decideBudget
	}
	return decideRetry
}

// hedgeDelayOf: when the call is hedged, ms after its start; false: it is
// not (not idempotent, hedging off, no delay published, a single attempt).
func hedgeDelayOf(p CallPolicy, idempotent, noHedge bool, own *float64, maxAttempts int) (float64, bool) {
	d := p.HedgeDelayMs
	if own != nil {
		d = own
	}
	if !idempotent || noHedge || d == nil || maxAttempts <= 1 {
		return 0, false
	}
	return *d, true
}

// mayHedge: at the hedge delay, whether the hedge goes (counted in the
// budget when it does): only while the call is unanswered with an attempt
// still out and attempts left.
func mayHedge(settled bool, live, made, maxAttempts int, now float64, b *callBudget, p CallPolicy, delayMs float64) bool {
	if settled || live == 0 || made >= maxAttempts {
		return false
	}
	p.HedgeDelayMs = &delayMs
	return b.takeHedge(p, now)
}

// shedsCall: whether a new call is refused at once while the route sheds (random in [0, 1)).
func shedsCall(p CallPolicy, random float64) bool {
	return p.Shed > 0 && random < p.Shed
}
