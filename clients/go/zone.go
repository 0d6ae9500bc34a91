package lars

import "math"

// Zone-aware picking (actors/strategies/zone.ts): calls stay in the
// caller's zone while it is healthy enough and spill to the other zones in
// proportion to what it lacks: with h the local healthy share and t the
// threshold, spill = 0 when h ≥ t, else 1 − h/t.

const zoneMinHealthyPercent = 70

func localHealthyShare(hosts []*pickHost, zone string) float64 {
	total, healthy := 0.0, 0.0
	for _, h := range hosts {
		if h.zone != zone || h.state == StateDraining {
			continue
		}
		w := 0.0
		if h.weight > 0 {
			w = float64(h.weight)
		}
		if w > 0 {
			total += w
			if h.state == StateHealthy && h.pickWeight > 0 {
				healthy += w
			} else if h.state == StateProbing && h.pickWeight > 0 {
				healthy += w * math.Min(1, h.pickWeight/w)
			}
		} else {
			total++
			if h.state == StateHealthy && h.pickWeight > 0 {
				healthy++
			}
		}
	}
	if total > 0 {
		return healthy / total
	}
	return 0
}

func spillFraction(h, pct float64) float64 {
	t := pct / 100
	if h >= t {
		return 0
	}
	if !(h > 0) {
		return 1
	}
	return 1 - h/t
}

func zoneDraw(key string) float64 {
	return float64(fmix32(FNV1a32(validUTF8(key))^0x9e3779b9)) / 4294967296
}

func hasPickable(hosts []*pickHost) bool {
	for _, h := range hosts {
		if isPickable(h.pickWeight) {
			return true
		}
	}
	return false
}

type zoneAware struct {
	local, remote       strategy
	zone                string
	pct                 float64
	random              Random
	localIdx, remoteIdx []int32
	localHealthy        float64
	spill               float64
}

func newZoneAware(create func() strategy, zone string, pct float64, random Random) *zoneAware {
	l := create()
	r := create()
	return &zoneAware{local: l, remote: r, zone: zone, pct: pct, random: random, spill: 1}
}

func (z *zoneAware) name() string { return z.local.name() }

func (z *zoneAware) update(v pickView) {
	var lh, rh []*pickHost
	var li, ri []int32
	for i, h := range v.hosts {
		if h.zone == z.zone {
			lh = append(lh, h)
			li = append(li, int32(i))
		} else {
			rh = append(rh, h)
			ri = append(ri, int32(i))
		}
	}
	z.localIdx, z.remoteIdx = li, ri
	z.local.update(pickView{hosts: lh, panic: v.panic, probeNum: v.probeNum})
	z.remote.update(pickView{hosts: rh, panic: v.panic, probeNum: v.probeNum})
	z.localHealthy = localHealthyShare(v.hosts, z.zone)
	localOk, remoteOk := hasPickable(lh), hasPickable(rh)
	switch {
	case !remoteOk:
		if len(lh) > 0 {
			z.spill = 0
		} else {
			z.spill = 1
		}
	case !localOk:
		z.spill = 1
	default:
		z.spill = spillFraction(z.localHealthy, z.pct)
	}
}

func (z *zoneAware) pick(key string, hasKey bool) int {
	s := z.spill
	var toRemote bool
	switch {
	case s <= 0:
		toRemote = false
	case s >= 1:
		toRemote = true
	case hasKey:
		toRemote = zoneDraw(key) < s
	default:
		toRemote = z.random() < s
	}
	first, second := z.local, z.remote
	fi, si := z.localIdx, z.remoteIdx
	if toRemote {
		first, second, fi, si = z.remote, z.local, z.remoteIdx, z.localIdx
	}
	if i := first.pick(key, hasKey); i >= 0 {
		return int(fi[i])
	}
	if len(si) > 0 {
		if j := second.pick(key, hasKey); j >= 0 {
			return int(si[j])
		}
	}
	return -1
}
