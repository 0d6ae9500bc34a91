package lars

import (
	"fmt"
	"math"
	"regexp"
	"unicode/utf16"
)

// The checks of the contract's schemas (schemas/contract.ts), in the order
// the reference reader applies them, so that a refused message is refused
// with the same kind: a missing field or a value of the wrong type is
// wrong_type, a value of the right type outside its bounds, pattern or set
// out_of_range, too many items oversize, another version bad_version.

// RejectKind names why an inbound message was dropped (schemas/README.md, "Rejections").
type RejectKind string

const (
	RejectMalformed       RejectKind = "malformed"
	RejectWrongType       RejectKind = "wrong_type"
	RejectOutOfRange      RejectKind = "out_of_range"
	RejectOversize        RejectKind = "oversize"
	RejectBadVersion      RejectKind = "bad_version"
	RejectSubjectMismatch RejectKind = "subject_mismatch"
)

// RejectError is a refused message: its kind and the failing field.
type RejectError struct {
	Kind   RejectKind
	Detail string
}

func (e *RejectError) Error() string {
	return fmt.Sprintf("lars: message refused (%s): %s", e.Kind, e.Detail)
}

func reject(kind RejectKind, format string, args ...any) *RejectError {
	return &RejectError{Kind: kind, Detail: fmt.Sprintf(format, args...)}
}

var ipv4Pattern = regexp.MustCompile(`^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$`)

// isIPv4 is ipv4Pattern without the regular expression: four decimal parts
// 0-255, no leading zeros (TestIsIPv4 holds it to the pattern).
func isIPv4(s string) bool {
	parts, i := 0, 0
	for parts < 4 {
		start, v := i, 0
		for i < len(s) && s[i] >= '0' && s[i] <= '9' && i-start < 3 {
			v = v*10 + int(s[i]-'0')
			i++
		}
		n := i - start
		if n == 0 || v > 255 || (n > 1 && s[start] == '0') {
			return false
		}
		parts++
		if parts < 4 {
			if i >= len(s) || s[i] != '.' {
				return false
			}
			i++
		}
	}
	return i == len(s)
}

const (
	maxUint32   = 4294967295
	maxSafeInt  = 9007199254740991
	maxTimeMs   = 8.64e15
	maxLatency  = 3600000
	maxOffset   = 3600000
	maxSender   = 128
	maxZone     = 64
	maxReason   = 64
	maxHosts    = 1024
	maxReports  = 10000
	minWeight   = 1
	maxWeight   = 10000
	minRetcode  = math.MinInt32
	maxRetcode  = math.MaxInt32
	maxMsgBytes = 1 << 20
	// the call policy's bounds
	maxRetryBudget = 100
	maxRetryFloor  = 1000000
	maxAttempt     = 255
)

// checker walks one message; the first failure is kept.
type checker struct{ err *RejectError }

func (c *checker) fail(kind RejectKind, path string, what string) {
	if c.err == nil {
		c.err = reject(kind, "%s: %s", path, what)
	}
}

func isFinite(f float64) bool { return !math.IsNaN(f) && !math.IsInf(f, 0) }

// number checks a number field: not a finite number is wrong_type (or own), out of [min, max] out_of_range.
func (c *checker) number(v any, path string, min, max float64, own RejectKind) (float64, bool) {
	f, ok := v.(float64)
	if !ok {
		c.fail(RejectWrongType, path, "expected number")
		return 0, false
	}
	if !isFinite(f) {
		c.fail(orKind(own, RejectWrongType), path, "expected a finite number")
		return 0, false
	}
	if f < min || f > max {
		c.fail(orKind(own, RejectOutOfRange), path, fmt.Sprintf("%v is outside %v..%v", f, min, max))
		return 0, false
	}
	return f, true
}

// integer is number with no fraction (a fraction is wrong_type, or own).
func (c *checker) integer(v any, path string, min, max float64, own RejectKind) (float64, bool) {
	f, ok := v.(float64)
	if !ok {
		c.fail(RejectWrongType, path, "expected integer")
		return 0, false
	}
	if !isFinite(f) || f != math.Trunc(f) {
		c.fail(orKind(own, RejectWrongType), path, "expected integer")
		return 0, false
	}
	if f < min || f > max {
		c.fail(orKind(own, RejectOutOfRange), path, fmt.Sprintf("%v is outside %v..%v", f, min, max))
		return 0, false
	}
	return f, true
}

func orKind(own, def RejectKind) RejectKind {
	if own != "" {
		return own
	}
	return def
}

// jsLen is a string's length as JavaScript counts it (UTF-16 code units).
func jsLen(s string) int {
	n := 0
	for _, r := range s {
		if utf16.IsSurrogate(r) || r >= 0x10000 {
			n += 2
		} else {
			n++
		}
	}
	return n
}

func (c *checker) str(v any, path string, minLen, maxLen int) (string, bool) {
	s, ok := v.(string)
	if !ok {
		c.fail(RejectWrongType, path, "expected string")
		return "", false
	}
	n := jsLen(s)
	if n < minLen || n > maxLen {
		c.fail(RejectOutOfRange, path, fmt.Sprintf("length %d is outside %d..%d", n, minLen, maxLen))
		return "", false
	}
	return s, true
}

func (c *checker) ip(v any, path string) (string, bool) {
	s, ok := c.str(v, path, 0, 15)
	if !ok {
		return "", false
	}
	if !isIPv4(s) {
		c.fail(RejectOutOfRange, path, "not a dotted-decimal IPv4 address")
		return "", false
	}
	return s, true
}

func (c *checker) boolean(v any, path string) bool {
	b, ok := v.(bool)
	if !ok {
		c.fail(RejectWrongType, path, "expected boolean")
	}
	return b
}

// oneOf checks a string from a set: another string out_of_range, anything else wrong_type.
func (c *checker) oneOf(v any, path string, set ...string) (string, bool) {
	s, ok := v.(string)
	if !ok {
		c.fail(RejectWrongType, path, "expected string")
		return "", false
	}
	for _, x := range set {
		if s == x {
			return s, true
		}
	}
	c.fail(RejectOutOfRange, path, fmt.Sprintf("%q is not one of %v", s, set))
	return "", false
}

// zone: absent or nil is none; a string of at most 64.
func (c *checker) zone(m map[string]any, path string) string {
	v, ok := m["zone"]
	if !ok || v == nil {
		return ""
	}
	s, _ := c.str(v, path, 0, maxZone)
	return s
}

// required reports the first of keys missing from m (wrong_type), as the reference does before any value.
func (c *checker) required(m map[string]any, path string, keys ...string) bool {
	for _, k := range keys {
		if _, ok := m[k]; !ok {
			c.fail(RejectWrongType, join(path, k), "required property missing")
			return false
		}
	}
	return true
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func index(path string, i int) string { return fmt.Sprintf("%s[%d]", path, i) }

// array checks an array field: min items out_of_range, max items oversize.
func (c *checker) array(v any, path string, min, max int) ([]any, bool) {
	a, ok := v.([]any)
	if !ok {
		c.fail(RejectWrongType, path, "expected array")
		return nil, false
	}
	if len(a) < min {
		c.fail(RejectOutOfRange, path, fmt.Sprintf("at least %d items expected", min))
		return nil, false
	}
	if len(a) > max {
		c.fail(RejectOversize, path, fmt.Sprintf("at most %d items expected", max))
		return nil, false
	}
	return a, true
}

// tuple checks an array of exactly n items (another length wrong_type).
func (c *checker) tuple(v any, path string, n int) ([]any, bool) {
	a, ok := v.([]any)
	if !ok || len(a) != n {
		c.fail(RejectWrongType, path, fmt.Sprintf("expected a tuple of %d", n))
		return nil, false
	}
	return a, true
}

// checked decodes b and reads it as a message of kind what (its name in a
// refusal) with read: the one path every message kind an agent reads takes,
// the checker naming the first refusal.
func checked[T any](b []byte, what string, read func(c *checker, m map[string]any) T) (T, error) {
	var zero T
	v, err := decodeMsgpack(b)
	if err != nil {
		return zero, reject(RejectMalformed, "%v", err)
	}
	m, rerr := message(v, what)
	if rerr != nil {
		return zero, rerr
	}
	c := &checker{}
	out := read(c, m)
	if c.err != nil {
		return zero, c.err
	}
	return out, nil
}

// message checks the top of a message: a map of version 1.
func message(v any, what string) (map[string]any, *RejectError) {
	m, ok := v.(map[string]any)
	if !ok {
		return nil, reject(RejectWrongType, "%s must be a map", what)
	}
	if f, ok := m["v"].(float64); !ok || f != 1 {
		return nil, reject(RejectBadVersion, "unsupported version %v", m["v"])
	}
	return m, nil
}
