package lars

import (
	"encoding/binary"
	"math"
	"unicode/utf8"
)

// The route state's fast path: a RouteState read straight from its msgpack
// bytes into the struct, with the contract's checks, and no value boxed.
// It answers only for a state it accepts; anything else (a refusal, an
// encoding it leaves to the general reader: a key that is not a string or
// comes twice, a value of another type than the field's) goes to the
// general path, which names the rejection. Both apply the same rules, so a
// state is accepted by one exactly when it is by the other (the conformance
// samples run through both: conformance_test.go).

type fastReader struct {
	b []byte
	p int
	// the strings read before, by their bytes (nil: none kept); one reader's alone
	intern map[string]string
}

// maxInterned: strings a route keeps for the next state at most (its hosts' addresses, states, reasons).
const maxInterned = 1024

func (r *fastReader) byte() (byte, bool) {
	if r.p >= len(r.b) {
		return 0, false
	}
	c := r.b[r.p]
	r.p++
	return c, true
}

func (r *fastReader) n(k int) ([]byte, bool) {
	if k < 0 || r.p+k > len(r.b) {
		return nil, false
	}
	s := r.b[r.p : r.p+k]
	r.p += k
	return s, true
}

// header reads a map or array header: its length.
func (r *fastReader) header(fix, fixMask, b16, b32 byte) (int, bool) {
	t, ok := r.byte()
	if !ok {
		return 0, false
	}
	switch {
	case t&^fixMask == fix:
		return int(t & fixMask), true
	case t == b16:
		s, ok := r.n(2)
		return int(binary.BigEndian.Uint16(s)), ok
	case t == b32:
		s, ok := r.n(4)
		if !ok {
			return 0, false
		}
		return int(binary.BigEndian.Uint32(s)), true
	}
	return 0, false
}

func (r *fastReader) mapLen() (int, bool)   { return r.header(0x80, 0x0f, 0xde, 0xdf) }
func (r *fastReader) arrayLen() (int, bool) { return r.header(0x90, 0x0f, 0xdc, 0xdd) }

// strBytes reads a string's bytes (valid UTF-8 only).
func (r *fastReader) strBytes() ([]byte, bool) {
	t, ok := r.byte()
	if !ok {
		return nil, false
	}
	var k int
	switch {
	case t >= 0xa0 && t <= 0xbf:
		k = int(t & 0x1f)
	case t == 0xd9:
		s, ok := r.n(1)
		if !ok {
			return nil, false
		}
		k = int(s[0])
	case t == 0xda:
		s, ok := r.n(2)
		if !ok {
			return nil, false
		}
		k = int(binary.BigEndian.Uint16(s))
	default:
		return nil, false
	}
	s, ok := r.n(k)
	if !ok || !utf8.Valid(s) {
		return nil, false
	}
	return s, true
}

// num reads a number as JavaScript holds it.
func (r *fastReader) num() (float64, bool) {
	t, ok := r.byte()
	if !ok {
		return 0, false
	}
	switch {
	case t <= 0x7f:
		return float64(t), true
	case t >= 0xe0:
		return float64(int8(t)), true
	}
	var size int
	switch t {
	case 0xcc, 0xd0:
		size = 1
	case 0xcd, 0xd1:
		size = 2
	case 0xca, 0xce, 0xd2:
		size = 4
	case 0xcb, 0xcf, 0xd3:
		size = 8
	default:
		return 0, false
	}
	s, ok := r.n(size)
	if !ok {
		return 0, false
	}
	switch t {
	case 0xca:
		return float64(math.Float32frombits(binary.BigEndian.Uint32(s))), true
	case 0xcb:
		return math.Float64frombits(binary.BigEndian.Uint64(s)), true
	case 0xcc:
		return float64(s[0]), true
	case 0xcd:
		return float64(binary.BigEndian.Uint16(s)), true
	case 0xce:
		return float64(binary.BigEndian.Uint32(s)), true
	case 0xcf:
		return float64(binary.BigEndian.Uint64(s)), true
	case 0xd0:
		return float64(int8(s[0])), true
	case 0xd1:
		return float64(int16(binary.BigEndian.Uint16(s))), true
	case 0xd2:
		return float64(int32(binary.BigEndian.Uint32(s))), true
	default:
		return float64(int64(binary.BigEndian.Uint64(s))), true
	}
}

func inRange(f, min, max float64) bool { return isFinite(f) && f >= min && f <= max }
func isInt(f, min, max float64) bool   { return inRange(f, min, max) && f == math.Trunc(f) }

// text is a string field checked for its length (UTF-16 units); with an
// intern table, a string read before is the same string again (a route's
// next state repeats nearly every string of the last: no allocation).
func (r *fastReader) text(min, max int) (string, bool) {
	s, ok := r.strBytes()
	if !ok {
		return "", false
	}
	var str string
	if r.intern != nil {
		if v, hit := r.intern[string(s)]; hit {
			str = v
		} else {
			str = string(s)
			if len(r.intern) < maxInterned {
				r.intern[str] = str
			}
		}
	} else {
		str = string(s)
	}
	if n := jsLen(str); n < min || n > max {
		return "", false
	}
	return str, true
}

func (r *fastReader) boolean() (bool, bool) {
	t, ok := r.byte()
	if !ok || (t != 0xc2 && t != 0xc3) {
		return false, false
	}
	return t == 0xc3, true
}

// fastRouteState reads a valid route state, or answers false (the general path decides).
func fastRouteState(b []byte) (*RouteState, bool) { return fastRouteStateInterned(b, nil) }

// fastRouteStateInterned is fastRouteState taking its strings from intern (nil: none) when read before.
func fastRouteStateInterned(b []byte, intern map[string]string) (*RouteState, bool) {
	r := &fastReader{b: b, intern: intern}
	n, ok := r.mapLen()
	if !ok {
		return nil, false
	}
	s := &RouteState{}
	var seen uint32
	const all = 1<<17 - 1
	for i := 0; i < n; i++ {
		key, ok := r.strBytes()
		if !ok {
			return nil, false
		}
		bit, ok := stateKeys[string(key)]
		if !ok {
			return nil, false // an extra key: the general path skips it
		}
		if seen&bit != 0 {
			return nil, false
		}
		seen |= bit
		var f float64
		switch string(key) {
		case "v":
			if f, ok = r.num(); !ok || f != 1 {
				return nil, false
			}
			s.V = 1
		case "sender":
			if s.Sender, ok = r.text(1, maxSender); !ok {
				return nil, false
			}
		case "modid", "cmdid":
			if f, ok = r.num(); !ok || !isInt(f, 0, maxUint32) {
				return nil, false
			}
			if key[0] == 'm' {
				s.Modid = uint32(f)
			} else {
				s.Cmdid = uint32(f)
			}
		case "version":
			if f, ok = r.num(); !ok || !isInt(f, 1, maxSafeInt) {
				return nil, false
			}
			s.Version = uint64(f)
		case "ts":
			if s.Ts, ok = r.num(); !ok || !inRange(s.Ts, 0, maxTimeMs) {
				return nil, false
			}
		case "profile":
			if s.Profile, ok = r.text(0, 16); !ok || (s.Profile != "default" && s.Profile != "lars") {
				return nil, false
			}
		case "panic":
			if s.Panic, ok = r.boolean(); !ok {
				return nil, false
			}
		case "removed":
			if s.Removed, ok = r.boolean(); !ok {
				return nil, false
			}
		case "probe_num":
			if f, ok = r.num(); !ok || !isInt(f, 0, math_MaxFloat) {
				return nil, false
			}
			s.ProbeNum = int(f)
		case "strategy":
			if s.Strategy, ok = r.text(1, 16); !ok {
				return nil, false
			}
			switch s.Strategy {
			case StrategyLars, StrategySwrr, StrategyP2c, StrategyP2cEwma, StrategyHash:
			default:
				return nil, false
			}
		case "retry_budget", "retry_floor", "hedge_delay_ms", "hedge_budget", "shed":
			i := policyIndex[string(key)]
			if f, ok = r.num(); !ok || !inRange(f, 0, callPolicyKeys[i].max) {
				return nil, false
			}
			v := f
			*s.policyField(i) = &v
		case "hosts":
			hn, ok := r.arrayLen()
			if !ok || hn > maxHosts {
				return nil, false
			}
			s.Hosts = make([]RouteHost, hn)
			for j := range s.Hosts {
				if !r.routeHost(&s.Hosts[j]) {
					return nil, false
				}
			}
		}
	}
	if seen|optionalStateKeys != all || r.p != len(b) {
		return nil, false
	}
	return s, true
}

var stateKeys = map[string]uint32{"v": 1, "sender": 2, "modid": 4, "cmdid": 8, "version": 16, "ts": 32, "profile": 64, "panic": 128, "removed": 256, "probe_num": 512, "hosts": 1024, "strategy": 2048,
	"retry_budget": 4096, "retry_floor": 8192, "hedge_delay_ms": 16384, "hedge_budget": 32768, "shed": 65536}

// optionalStateKeys: the keys a valid state may leave out (the strategy and the call policy).
const optionalStateKeys = 2048 | 4096 | 8192 | 16384 | 32768 | 65536

// policyIndex: a call policy key's index in callPolicyKeys.
var policyIndex = map[string]int{"retry_budget": 0, "retry_floor": 1, "hedge_delay_ms": 2, "hedge_budget": 3, "shed": 4}

var hostKeysBits = map[string]uint32{"ip": 1, "port": 2, "weight": 4, "state": 8, "reason": 16, "since": 32, "pick_weight": 64, "zone": 128, "trial_agent": 256}

func (r *fastReader) routeHost(h *RouteHost) bool {
	n, ok := r.mapLen()
	if !ok {
		return false
	}
	var seen uint32
	for i := 0; i < n; i++ {
		key, ok := r.strBytes()
		if !ok {
			return false
		}
		bit, ok := hostKeysBits[string(key)]
		if !ok || seen&bit != 0 {
			return false
		}
		seen |= bit
		var f float64
		switch string(key) {
		case "ip":
			if h.IP, ok = r.text(0, 15); !ok || !isIPv4(h.IP) {
				return false
			}
		case "port":
			if f, ok = r.num(); !ok || !isInt(f, 1, 65535) {
				return false
			}
			h.Port = int(f)
		case "weight":
			if f, ok = r.num(); !ok || !isInt(f, minWeight, maxWeight) {
				return false
			}
			h.Weight = int(f)
		case "zone":
			if r.p < len(r.b) && r.b[r.p] == 0xc0 {
				r.p++
				continue
			}
			if h.Zone, ok = r.text(0, maxZone); !ok {
				return false
			}
		case "state":
			if h.State, ok = r.text(0, 16); !ok {
				return false
			}
			switch h.State {
			case StateHealthy, StateOverloaded, StateProbing, StateDraining:
			default:
				return false
			}
		case "reason":
			if h.Reason, ok = r.text(0, maxReason); !ok {
				return false
			}
		case "since":
			if h.Since, ok = r.num(); !ok || !inRange(h.Since, 0, maxTimeMs) {
				return false
			}
		case "pick_weight":
			if h.PickWeight, ok = r.num(); !ok || !inRange(h.PickWeight, 0, maxWeight) {
				return false
			}
		case "trial_agent":
			if h.TrialAgent, ok = r.text(1, maxSender); !ok {
				return false
			}
		}
	}
	return seen|hostKeysBits["zone"]|hostKeysBits["trial_agent"] == 1<<9-1
}
