package lars

import (
	"math"
	"sort"
	"strconv"
)

// Consistent hash by key (actors/strategies/hash.ts): every host with a
// positive pick weight owns round(160 × weight / max weight) points (1..160)
// at Hash32("ip:port#i"); a key goes to the first point at or after
// Hash32(key), wrapping round; two points on one hash go to the host listed
// first. A call without a key is balanced by swrr.

const hashVnodes = 160

type ringHash struct {
	vnodes   int
	fallback *swrr
	keys     []string
	idx      []int32
	weights  []float64
	points   []uint32
	owners   []int32
}

func newHash(random Random) *ringHash {
	return &ringHash{vnodes: hashVnodes, fallback: newSwrr(random, 0, swrrMaxPeriod)}
}

func (s *ringHash) name() string { return StrategyHash }

func (s *ringHash) update(v pickView) {
	s.fallback.update(v)
	idx, ws := positiveHosts(v.hosts)
	if sameHostSet(s.keys, v.hosts) && sameWeights(s.idx, s.weights, idx, ws) {
		return
	}
	s.keys = hostKeys(v.hosts)
	s.idx, s.weights = idx, ws
	s.build()
}

func (s *ringHash) pick(key string, hasKey bool) int {
	if !hasKey || key == "" {
		return s.fallback.pick("", false)
	}
	n := len(s.points)
	if n == 0 {
		return -1
	}
	h := Hash32(validUTF8(key))
	lo, hi := 0, n
	for lo < hi {
		mid := int(uint(lo+hi) >> 1)
		if s.points[mid] < h {
			lo = mid + 1
		} else {
			hi = mid
		}
	}
	if lo == n {
		lo = 0
	}
	return int(s.owners[lo])
}

func (s *ringHash) build() {
	maxW := 0.0
	for _, w := range s.weights {
		if w > maxW {
			maxW = w
		}
	}
	type point struct {
		h     uint32
		owner int32
	}
	var pts []point
	for j, vi := range s.idx {
		c := int(math.Min(float64(s.vnodes), math.Max(1, math.Floor(float64(s.vnodes)*s.weights[j]/maxW+0.5))))
		base := s.keys[vi] + "#"
		for i := 0; i < c; i++ {
			pts = append(pts, point{Hash32(base + strconv.Itoa(i)), vi})
		}
	}
	sort.Slice(pts, func(a, b int) bool {
		if pts[a].h != pts[b].h {
			return pts[a].h < pts[b].h
		}
		return pts[a].owner < pts[b].owner
	})
	s.points = make([]uint32, len(pts))
	s.owners = make([]int32, len(pts))
	for i, p := range pts {
		s.points[i], s.owners[i] = p.h, p.owner
	}
}
