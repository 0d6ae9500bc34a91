package lars

// weightedPairs is the draw of both power-of-two-choices strategies
// (actors/strategies/pair.ts): two distinct hosts, each with probability
// proportional to its pick weight, and each host's in-flight scale.
type weightedPairs struct {
	hosts  []*pickHost
	first  int
	second int
	scale  []float64
	idx    []int32
	cum    []float64
	total  float64
}

func (p *weightedPairs) update(v pickView) {
	idx, ws := positiveHosts(v.hosts)
	cum := make([]float64, len(idx))
	total := 0.0
	for j, w := range ws {
		total += w
		cum[j] = total
	}
	scale := make([]float64, len(v.hosts))
	for i := range scale {
		scale[i] = 1
	}
	squares := 0.0
	for _, w := range ws {
		squares += w * w
	}
	mean := 0.0
	if total > 0 {
		mean = squares / total
	}
	for j, w := range ws {
		if w == mean {
			scale[idx[j]] = 1
		} else {
			scale[idx[j]] = mean / w
		}
	}
	p.hosts, p.idx, p.cum, p.total, p.scale = v.hosts, idx, cum, total, scale
}

func (p *weightedPairs) draw(random Random) int {
	n := len(p.idx)
	if n == 0 {
		p.first, p.second = -1, -1
		return 0
	}
	if n == 1 {
		p.first, p.second = int(p.idx[0]), -1
		return 1
	}
	cum := p.cum
	a := p.find(random() * p.total)
	lo := 0.0
	if a > 0 {
		lo = cum[a-1]
	}
	hi := cum[a]
	r := random() * (p.total - (hi - lo))
	if r >= lo {
		r += hi - lo
	}
	b := p.find(r)
	if b == a {
		if a+1 < n {
			b = a + 1
		} else {
			b = a - 1
		}
	}
	p.first, p.second = int(p.idx[a]), int(p.idx[b])
	return n
}

func (p *weightedPairs) find(r float64) int {
	lo, hi := 0, len(p.cum)-1
	for lo < hi {
		mid := int(uint(lo+hi) >> 1)
		if p.cum[mid] > r {
			hi = mid
		} else {
			lo = mid + 1
		}
	}
	return lo
}

// p2c: cost = (latency || 1) × (inflight × scale + 1).
type p2c struct {
	random Random
	pairs  weightedPairs
}

func newP2c(o strategyOptions) *p2c {
	r := o.random
	if r == nil {
		r = SeededRandom(0x9e3779b9)
	}
	return &p2c{random: r}
}

func (s *p2c) name() string      { return StrategyP2c }
func (s *p2c) update(v pickView) { s.pairs.update(v) }

func p2cCost(h *pickHost, scale float64) float64 {
	l := h.latencyMs
	if l == 0 {
		l = 1
	}
	return l * (float64(h.inflight)*scale + 1)
}

func (s *p2c) pick(string, bool) int {
	p := &s.pairs
	if p.draw(s.random) < 2 {
		return p.first
	}
	ia, ib := p.first, p.second
	if p2cCost(p.hosts[ib], p.scale[ib]) < p2cCost(p.hosts[ia], p.scale[ia]) {
		return ib
	}
	return ia
}

// p2cEwma: cost = (latencyAt || 1) × (liveInflight × scale + 1), the default strategy.
type p2cEwma struct {
	random    Random
	now       func() float64
	decayMs   float64
	timeoutMs float64
	pairs     weightedPairs
}

func newP2cEwma(o strategyOptions) *p2cEwma {
	r := o.random
	if r == nil {
		r = SeededRandom(0x9e3779b9)
	}
	now := o.now
	if now == nil {
		now = func() float64 { return 0 }
	}
	d, t := o.decayMs, o.timeoutMs
	if d == 0 {
		d = 10000
	}
	if t == 0 {
		t = 1000
	}
	return &p2cEwma{random: r, now: now, decayMs: d, timeoutMs: t}
}

func (s *p2cEwma) name() string      { return StrategyP2cEwma }
func (s *p2cEwma) update(v pickView) { s.pairs.update(v) }

func p2cEwmaCost(h *pickHost, now, decayMs, timeoutMs, scale float64) float64 {
	l := latencyAt(h, now, decayMs, timeoutMs)
	if l == 0 {
		l = 1
	}
	return l * (float64(liveInflight(h, now, timeoutMs))*scale + 1)
}

func (s *p2cEwma) pick(string, bool) int {
	p := &s.pairs
	if p.draw(s.random) < 2 {
		return p.first
	}
	ia, ib := p.first, p.second
	now := s.now()
	if p2cEwmaCost(p.hosts[ib], now, s.decayMs, s.timeoutMs, p.scale[ib]) < p2cEwmaCost(p.hosts[ia], now, s.decayMs, s.timeoutMs, p.scale[ia]) {
		return ib
	}
	return ia
}
