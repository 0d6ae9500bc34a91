package lars

import "math"

// The agent's local feedback to its strategy (actors/strategies/feedback.ts):
// a pick adds a call in flight, a report removes it and moves the host's
// peak-EWMA latency estimate; a failed call counts as at least the timeout.

const ageFactor = 2

type feedbackOptions struct {
	timeoutMs float64
	decayMs   float64
}

func liveInflight(h *pickHost, now, timeoutMs float64) int {
	n := h.inflight
	if n == 0 {
		return 0
	}
	if h.hasLifeTs && now-h.lifeTs > timeoutMs {
		return 0
	}
	return n
}

// notePick: a call was picked on h at now() (read only when needed).
func notePick(h *pickHost, now func() float64, o feedbackOptions, ages bool) {
	if !ages && h.inflight > 0 && h.state != StateProbing {
		h.inflight++
		return
	}
	t := now()
	if liveInflight(h, t, o.timeoutMs) == 0 {
		h.inflight = 0
		h.pendingSum = 0
		h.lifeTs = t
		h.hasLifeTs = true
	}
	h.inflight++
	h.pendingSum += t
}

// noteReport: the call picked on h came back at now after latencyMs (capped before).
func noteReport(h *pickHost, ok bool, lat, now float64, o feedbackOptions) {
	if h.inflight > 0 {
		h.inflight--
		n := float64(h.inflight)
		picked := now - lat
		rest := h.pendingSum - picked
		switch {
		case n == 0:
			h.pendingSum = 0
		case rest < n*picked:
			h.pendingSum = n * picked
		default:
			h.pendingSum = rest
		}
	}
	h.lifeTs = now
	h.hasLifeTs = true
	var sample float64
	switch {
	case ok:
		sample = lat
	case lat >= o.timeoutMs:
		sample = ageFactor * lat
	default:
		sample = o.timeoutMs
	}
	est := h.latencyMs
	last := now
	if h.hasLatTs {
		last = h.latencyTs
	}
	if est == 0 || sample >= est {
		h.latencyMs = sample
	} else {
		dt := 0.0
		if now > last {
			dt = now - last
		}
		w := math.Exp(-dt / o.decayMs)
		h.latencyMs = est*w + sample*(1-w)
	}
	h.latencyTs = now
	h.hasLatTs = true
}

// noteRelease: a pick not used after all.
func noteRelease(h *pickHost, now float64) {
	if h.inflight == 0 {
		return
	}
	h.inflight--
	rest := h.pendingSum - now
	if h.inflight == 0 || rest < 0 {
		h.pendingSum = 0
	} else {
		h.pendingSum = rest
	}
}

// latencyAt: the estimate decayed since its last sample, at least twice the mean age of the calls in flight.
func latencyAt(h *pickHost, now, decayMs, timeoutMs float64) float64 {
	est := h.latencyMs
	if h.hasLatTs && now > h.latencyTs && est > 0 {
		est *= math.Exp(-(now - h.latencyTs) / decayMs)
	}
	n := liveInflight(h, now, timeoutMs)
	if n > 0 {
		age := now - h.pendingSum/float64(n)
		if age <= timeoutMs && ageFactor*age > est {
			est = ageFactor * age
		}
	}
	return est
}

// boundTrials: the strategy's answer, except that a probing host at its bound of trials in flight is passed over.
func boundTrials(s strategy, hosts []*pickHost, key string, hasKey bool, first int, now func() float64, maxTrials int, timeoutMs float64) int {
	i := first
	if hasKey && s.name() == StrategyHash {
		return i
	}
	for tries := len(hosts); i >= 0 && tries > 0; tries-- {
		if !atBound(hosts[i], now, maxTrials, timeoutMs) {
			return i
		}
		i = s.pick(key, hasKey)
	}
	if i >= 0 && atBound(hosts[i], now, maxTrials, timeoutMs) {
		return -1
	}
	return i
}

func atBound(h *pickHost, now func() float64, maxTrials int, timeoutMs float64) bool {
	return h.state == StateProbing && h.inflight >= maxTrials && liveInflight(h, now(), timeoutMs) >= maxTrials
}
