package lars

import "math"

// Smooth weighted round robin (nginx's), as actors/strategies/swrr.ts: each
// pick every host's current grows by its weight, the largest wins (first on
// a tie) and pays back the total. Weights that are decimals of at most three
// fraction digits with a reduced period of at most swrrMaxPeriod are
// precomputed into one period; others run live.

const swrrMaxPeriod = 4096
const swrrMaxScale = 1000

// swrrSequence is live SWRR over weights from the all-zero start, length picks.
func swrrSequence(weights []int32, length int) []int32 {
	n := len(weights)
	cur := make([]float64, n)
	total := 0.0
	for _, w := range weights {
		if w > 0 {
			total += float64(w)
		}
	}
	out := make([]int32, length)
	for k := range out {
		out[k] = -1
	}
	if total <= 0 {
		return out
	}
	for k := 0; k < length; k++ {
		best := -1
		bestCur := math.Inf(-1)
		for i := 0; i < n; i++ {
			w := float64(weights[i])
			if !(w > 0) {
				continue
			}
			c := cur[i] + w
			cur[i] = c
			if c > bestCur {
				bestCur = c
				best = i
			}
		}
		cur[best] = bestCur - total
		out[k] = int32(best)
	}
	return out
}

// integerWeights: the weights as small integers giving the same sequence, or nil.
func integerWeights(weights []float64, maxPeriod int) []int32 {
	for scale := 1.0; scale <= swrrMaxScale; scale *= 10 {
		ints := make([]int32, len(weights))
		ok := true
		for i, w := range weights {
			x := w * scale
			r := math.Floor(x + 0.5) // Math.round
			if math.Abs(x-r) > 1e-9*math.Max(1, x) || r < 1 || r > 0x3fffffff {
				ok = false
				break
			}
			ints[i] = int32(r)
		}
		if !ok {
			continue
		}
		g := int32(0)
		for _, v := range ints {
			g = gcd(g, v)
		}
		sum := 0
		for i := range ints {
			ints[i] /= g
			sum += int(ints[i])
		}
		if sum <= maxPeriod {
			return ints
		}
		return nil
	}
	return nil
}

func gcd(a, b int32) int32 {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}

var emptySeq = []int32{-1}

type swrr struct {
	random    Random
	offset    int
	maxPeriod int
	keys      []string
	idx       []int32
	weights   []float64
	seq       []int32
	pos       int
	live      bool
	current   []float64
	total     float64
}

func newSwrr(random Random, offset, maxPeriod int) *swrr {
	return &swrr{random: random, offset: offset, maxPeriod: maxPeriod, seq: emptySeq}
}

func (s *swrr) name() string { return StrategySwrr }

func (s *swrr) update(v pickView) {
	idx, ws := positiveHosts(v.hosts)
	if sameHostSet(s.keys, v.hosts) && sameWeights(s.idx, s.weights, idx, ws) {
		return
	}
	s.keys = hostKeys(v.hosts)
	s.idx = idx
	s.weights = ws
	s.rebuild()
}

func (s *swrr) pick(string, bool) int {
	if s.live {
		return s.pickLive()
	}
	r := s.seq[s.pos]
	s.pos++
	if s.pos == len(s.seq) {
		s.pos = 0
	}
	return int(r)
}

func (s *swrr) rebuild() {
	n := len(s.idx)
	var ints []int32
	if n > 0 {
		ints = integerWeights(s.weights, s.maxPeriod)
	}
	if n == 0 || ints != nil {
		s.live = false
		s.current = nil
		if n == 0 {
			s.seq = emptySeq
		} else {
			sum := 0
			for _, w := range ints {
				sum += int(w)
			}
			local := swrrSequence(ints, sum)
			for k := range local {
				local[k] = s.idx[local[k]]
			}
			s.seq = local
		}
		s.pos = s.startSteps(len(s.seq)) % len(s.seq)
		return
	}
	s.live = true
	s.seq = emptySeq
	s.current = make([]float64, n)
	total := 0.0
	minW := math.Inf(1)
	for _, w := range s.weights {
		total += w
		if w < minW {
			minW = w
		}
	}
	s.total = total
	span := int(math.Max(float64(n), math.Min(swrrMaxPeriod, math.Ceil(total/minW))))
	skip := s.startSteps(span) % span
	for k := 0; k < skip; k++ {
		s.pickLive()
	}
}

func (s *swrr) startSteps(span int) int {
	if s.random != nil {
		return int(math.Floor(s.random() * float64(span)))
	}
	return s.offset
}

func (s *swrr) pickLive() int {
	w := s.weights
	cur := s.current
	best := -1
	bestCur := math.Inf(-1)
	for i := range w {
		c := cur[i] + w[i]
		cur[i] = c
		if c > bestCur {
			bestCur = c
			best = i
		}
	}
	if best < 0 {
		return -1
	}
	cur[best] = bestCur - s.total
	return int(s.idx[best])
}
