package lars

import "math"

// Lars' round robin with probing (actors/strategies/lars.ts), as the
// original agent's load_balance::choice_one_host: healthy and probing hosts
// with a positive pick weight form the idle list, the others (but draining
// hosts and hosts an operator ejected) the overload list; one call in
// probe_num + 1 probes the next overloaded host; with no idle host, probe_num
// calls answer no host, then one probes. Each list rotates in the route's
// host order and continues after the host it returned last across updates.
// In panic: round robin over every host with a positive pick weight.

type rotation struct {
	list []int32
	pos  int
	last int32
}

func (r *rotation) set(list []int32) {
	r.list = list
	p := 0
	for p < len(list) && list[p] <= r.last {
		p++
	}
	if p == len(list) {
		p = 0
	}
	r.pos = p
}

func (r *rotation) next() int {
	if len(r.list) == 0 {
		return -1
	}
	v := r.list[r.pos]
	r.pos++
	if r.pos == len(r.list) {
		r.pos = 0
	}
	r.last = v
	return int(v)
}

type larsRR struct {
	keys                []string
	idle, overload, all rotation
	panic               bool
	probeNum            int
	counter             int
}

func newLars() *larsRR {
	return &larsRR{idle: rotation{last: -1}, overload: rotation{last: -1}, all: rotation{last: -1}, probeNum: 10}
}

func (s *larsRR) name() string { return StrategyLars }

func (s *larsRR) update(v pickView) {
	if !sameHostSet(s.keys, v.hosts) {
		newKeys := hostKeys(v.hosts)
		at := make(map[string]int32, len(newKeys))
		for i, k := range newKeys {
			at[k] = int32(i)
		}
		remap := func(last int32) int32 {
			i := int(last)
			if i > len(s.keys)-1 {
				i = len(s.keys) - 1
			}
			for ; i >= 0; i-- {
				if j, ok := at[s.keys[i]]; ok {
					return j
				}
			}
			return -1
		}
		s.idle.last, s.overload.last, s.all.last = remap(s.idle.last), remap(s.overload.last), remap(s.all.last)
		s.keys = newKeys
	}
	var idle, overload, all []int32
	for i, h := range v.hosts {
		positive := h.pickWeight > 0
		if positive {
			all = append(all, int32(i))
		}
		if h.state == StateDraining || h.reason == "admin_eject" {
			continue
		}
		if positive && (h.state == StateHealthy || h.state == StateProbing) {
			idle = append(idle, int32(i))
		} else {
			overload = append(overload, int32(i))
		}
	}
	s.idle.set(idle)
	s.overload.set(overload)
	s.all.set(all)
	s.panic = v.panic
	s.probeNum = int(math.Max(0, float64(v.probeNum)))
}

func (s *larsRR) pick(string, bool) int {
	if s.panic {
		return s.all.next()
	}
	if len(s.idle.list) == 0 {
		if s.counter >= s.probeNum {
			s.counter = 0
			return s.overload.next()
		}
		s.counter++
		return -1
	}
	if len(s.overload.list) == 0 {
		return s.idle.next()
	}
	if s.counter >= s.probeNum {
		s.counter = 0
		return s.overload.next()
	}
	s.counter++
	return s.idle.next()
}
