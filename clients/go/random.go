package lars

import (
	crand "crypto/rand"
	"encoding/binary"
)

// Random is a source of numbers in [0, 1). An agent's own is seeded from
// crypto/rand so that agents spread; tests and the conformance vectors
// inject SeededRandom.
type Random func() float64

// SeededRandom is mulberry32 (actors/strategies/random.ts): the same seed
// gives the same numbers as the TypeScript agent's seeded source. Not safe
// for concurrent use on its own (an agent calls it under a route's lock).
func SeededRandom(seed uint32) Random {
	a := seed
	return func() float64 {
		a += 0x6d2b79f5
		t := a
		t = (t ^ (t >> 15)) * (t | 1)
		t ^= t + (t^(t>>7))*(t|61)
		return float64(t^(t>>14)) / 4294967296
	}
}

// newRandom is a mulberry32 source with a random seed.
func newRandom() Random {
	var b [4]byte
	_, _ = crand.Read(b[:])
	return SeededRandom(binary.LittleEndian.Uint32(b[:]))
}
