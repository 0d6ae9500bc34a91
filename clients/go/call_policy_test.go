package lars

import (
	"testing"
)

// The call policy's conformance vectors (schemas/conformance/calls.json),
// generated from actors/agent-budget.ts and actors/call-decide.ts.

type policyVector struct {
	RetryBudget  float64  `json:"retry_budget"`
	RetryFloor   float64  `json:"retry_floor"`
	HedgeDelayMs *float64 `json:"hedge_delay_ms"`
	HedgeBudget  float64  `json:"hedge_budget"`
	Shed         float64  `json:"shed"`
}

func (v policyVector) policy() CallPolicy {
	return CallPolicy{v.RetryBudget, v.RetryFloor, v.HedgeDelayMs, v.HedgeBudget, v.Shed}
}

func samePolicy(a CallPolicy, b CallPolicy) bool {
	if (a.HedgeDelayMs == nil) != (b.HedgeDelayMs == nil) || (a.HedgeDelayMs != nil && *a.HedgeDelayMs != *b.HedgeDelayMs) {
		return false
	}
	return a.RetryBudget == b.RetryBudget && a.RetryFloor == b.RetryFloor && a.HedgeBudget == b.HedgeBudget && a.Shed == b.Shed
}

type callsFile struct {
	T0       float64 `json:"t0"`
	Policies []struct {
		Name  string       `json:"name"`
		State *RouteState  `json:"state"`
		Want  policyVector `json:"want"`
	} `json:"policies"`
	Budgets []struct {
		Name      string       `json:"name"`
		Policy    policyVector `json:"policy"`
		WindowSec float64      `json:"window_sec"`
		Start     float64      `json:"start"`
		Steps     []struct {
			Op   string  `json:"op"`
			Now  float64 `json:"now"`
			Want any     `json:"want"`
		} `json:"steps"`
	} `json:"budgets"`
	AfterFailure []struct {
		Name   string       `json:"name"`
		Policy policyVector `json:"policy"`
		Firsts int          `json:"firsts"`
		State  struct {
			Retriable   bool    `json:"retriable"`
			Live        int     `json:"live"`
			Made        int     `json:"made"`
			MaxAttempts int     `json:"maxAttempts"`
			Now         float64 `json:"now"`
			Deadline    float64 `json:"deadline"`
		} `json:"state"`
		Want string `json:"want"`
	} `json:"after_failure"`
	HedgeDelays []struct {
		Name        string   `json:"name"`
		PolicyDelay *float64 `json:"policy_hedge_delay_ms"`
		Idempotent  *bool    `json:"idempotent"`
		Hedge       *bool    `json:"hedge"`
		Own         *float64 `json:"hedge_delay_ms"`
		MaxAttempts int      `json:"max_attempts"`
		Want        *float64 `json:"want"`
	} `json:"hedge_delays"`
	MayHedge []struct {
		Name        string       `json:"name"`
		Policy      policyVector `json:"policy"`
		Firsts      int          `json:"firsts"`
		DelayMs     float64      `json:"delay_ms"`
		Settled     bool         `json:"settled"`
		Live        int          `json:"live"`
		Made        int          `json:"made"`
		MaxAttempts int          `json:"max_attempts"`
		Want        bool         `json:"want"`
	} `json:"may_hedge"`
	Shed []struct {
		Shed   float64 `json:"shed"`
		Random float64 `json:"random"`
		Want   bool    `json:"want"`
	} `json:"shed"`
}

func TestConformanceCalls(t *testing.T) {
	var f callsFile
	readVectors(t, "calls.json", &f)
	if len(f.Policies) < 4 || len(f.Budgets) < 4 || len(f.AfterFailure) < 6 || len(f.HedgeDelays) < 6 || len(f.MayHedge) < 4 || len(f.Shed) < 4 {
		t.Fatal("calls.json holds too few vectors")
	}
	for _, v := range f.Policies {
		if got := PolicyOf(v.State); !samePolicy(got, v.Want.policy()) {
			t.Errorf("policy %s: %+v, want %+v", v.Name, got, v.Want.policy())
		}
	}
	steps := 0
	for _, v := range f.Budgets {
		b := newCallBudget(v.Start, v.WindowSec)
		p := v.Policy.policy()
		for i, s := range v.Steps {
			steps++
			switch s.Op {
			case "first":
				b.first(s.Now)
			case "retry", "hedge":
				got := false
				if s.Op == "retry" {
					got = b.takeRetry(p, s.Now)
				} else {
					got = b.takeHedge(p, s.Now)
				}
				if got != s.Want.(bool) {
					t.Fatalf("budget %s, step %d (%s at %v): %v, want %v", v.Name, i, s.Op, s.Now-v.Start, got, s.Want)
				}
			case "totals":
				w := s.Want.(map[string]any)
				fi, r, h := b.totals(s.Now)
				if fi != w["firsts"].(float64) || r != w["retries"].(float64) || h != w["hedges"].(float64) {
					t.Fatalf("budget %s, step %d: totals %v %v %v, want %v", v.Name, i, fi, r, h, w)
				}
			default:
				t.Fatalf("unknown op %q", s.Op)
			}
		}
	}
	if steps < 1000 {
		t.Errorf("only %d budget steps", steps)
	}
	for _, v := range f.AfterFailure {
		b := newCallBudget(f.T0, agentWindowSec)
		for i := 0; i < v.Firsts; i++ {
			b.first(f.T0)
		}
		s := v.State
		got := afterFailure(failedState{s.Retriable, s.Live, s.Made, s.MaxAttempts, s.Now, s.Deadline}, b, v.Policy.policy())
		if string(got) != v.Want {
			t.Errorf("after failure, %s: %s, want %s", v.Name, got, v.Want)
		}
	}
	for _, v := range f.HedgeDelays {
		p := PolicyOf(nil)
		p.HedgeDelayMs = v.PolicyDelay
		d, ok := hedgeDelayOf(p, v.Idempotent != nil && *v.Idempotent, v.Hedge != nil && !*v.Hedge, v.Own, v.MaxAttempts)
		if ok != (v.Want != nil) || (ok && d != *v.Want) {
			t.Errorf("hedge delay, %s: %v %v, want %v", v.Name, d, ok, v.Want)
		}
	}
	for _, v := range f.MayHedge {
		b := newCallBudget(f.T0, agentWindowSec)
		for i := 0; i < v.Firsts; i++ {
			b.first(f.T0)
		}
		if got := mayHedge(v.Settled, v.Live, v.Made, v.MaxAttempts, f.T0+100, b, v.Policy.policy(), v.DelayMs); got != v.Want {
			t.Errorf("may hedge, %s: %v, want %v", v.Name, got, v.Want)
		}
	}
	for _, v := range f.Shed {
		if got := shedsCall(CallPolicy{Shed: v.Shed}, v.Random); got != v.Want {
			t.Errorf("shed %v at %v: %v", v.Shed, v.Random, got)
		}
	}
}
