package lars

import (
	"encoding/binary"
	"errors"
	"math"
	"strconv"
	"unicode/utf8"
)

// The contract's messages are plain msgpack maps (schemas/README.md,
// "Encoding"). This file reads any msgpack value into the shapes the
// reference reader sees: numbers as float64 (as JavaScript holds them),
// strings, []byte, []any, map[string]any, bool and nil. Decoding is strict
// where the reference is: the never-used byte 0xc1, a truncated value and
// trailing bytes are malformed.

var errMalformed = errors.New("malformed msgpack")

type mpReader struct {
	b []byte
	p int
}

// decodeMsgpack decodes exactly one msgpack value from b.
func decodeMsgpack(b []byte) (any, error) {
	r := mpReader{b: b}
	v, err := r.value(0)
	if err != nil {
		return nil, err
	}
	if r.p != len(b) {
		return nil, errors.New("trailing bytes after the msgpack value")
	}
	return v, nil
}

func (r *mpReader) need(n int) ([]byte, error) {
	if n < 0 || r.p+n > len(r.b) {
		return nil, errMalformed
	}
	s := r.b[r.p : r.p+n]
	r.p += n
	return s, nil
}

func (r *mpReader) uint(n int) (uint64, error) {
	s, err := r.need(n)
	if err != nil {
		return 0, err
	}
	switch n {
	case 1:
		return uint64(s[0]), nil
	case 2:
		return uint64(binary.BigEndian.Uint16(s)), nil
	case 4:
		return uint64(binary.BigEndian.Uint32(s)), nil
	default:
		return binary.BigEndian.Uint64(s), nil
	}
}

const maxDepth = 64

func (r *mpReader) value(depth int) (any, error) {
	if depth > maxDepth {
		return nil, errors.New("msgpack nested too deep")
	}
	s, err := r.need(1)
	if err != nil {
		return nil, err
	}
	t := s[0]
	switch {
	case t <= 0x7f:
		return float64(t), nil
	case t >= 0xe0:
		return float64(int8(t)), nil
	case t >= 0x80 && t <= 0x8f:
		return r.mapOf(int(t&0x0f), depth)
	case t >= 0x90 && t <= 0x9f:
		return r.arrayOf(int(t&0x0f), depth)
	case t >= 0xa0 && t <= 0xbf:
		return r.str(int(t & 0x1f))
	}
	switch t {
	case 0xc0:
		return nil, nil
	case 0xc2:
		return false, nil
	case 0xc3:
		return true, nil
	case 0xc4, 0xc5, 0xc6:
		n, err := r.uint(1 << (t - 0xc4))
		if err != nil {
			return nil, err
		}
		bs, err := r.need(int(n))
		if err != nil {
			return nil, err
		}
		return append([]byte(nil), bs...), nil
	case 0xca:
		n, err := r.uint(4)
		return float64(math.Float32frombits(uint32(n))), err
	case 0xcb:
		n, err := r.uint(8)
		return math.Float64frombits(n), err
	case 0xcc, 0xcd, 0xce, 0xcf:
		n, err := r.uint(1 << (t - 0xcc))
		return float64(n), err
	case 0xd0:
		n, err := r.uint(1)
		return float64(int8(n)), err
	case 0xd1:
		n, err := r.uint(2)
		return float64(int16(n)), err
	case 0xd2:
		n, err := r.uint(4)
		return float64(int32(n)), err
	case 0xd3:
		n, err := r.uint(8)
		return float64(int64(n)), err
	case 0xd9, 0xda, 0xdb:
		n, err := r.uint(1 << (t - 0xd9))
		if err != nil {
			return nil, err
		}
		return r.str(int(n))
	case 0xdc, 0xdd:
		n, err := r.uint(2 << (t - 0xdc))
		if err != nil {
			return nil, err
		}
		return r.arrayOf(int(n), depth)
	case 0xde, 0xdf:
		n, err := r.uint(2 << (t - 0xde))
		if err != nil {
			return nil, err
		}
		return r.mapOf(int(n), depth)
	}
	// 0xc1 (never used) and the extension types: no contract message holds them
	return nil, errMalformed
}

func (r *mpReader) str(n int) (any, error) {
	bs, err := r.need(n)
	if err != nil {
		return nil, err
	}
	if !utf8.Valid(bs) {
		return string([]rune(string(bs))), nil
	}
	return string(bs), nil
}

func (r *mpReader) arrayOf(n int, depth int) (any, error) {
	if n > len(r.b)-r.p {
		return nil, errMalformed
	}
	out := make([]any, n)
	for i := range out {
		v, err := r.value(depth + 1)
		if err != nil {
			return nil, err
		}
		out[i] = v
	}
	return out, nil
}

func (r *mpReader) mapOf(n int, depth int) (any, error) {
	if n > (len(r.b)-r.p)/2 {
		return nil, errMalformed
	}
	out := make(map[string]any, n)
	for i := 0; i < n; i++ {
		k, err := r.value(depth + 1)
		if err != nil {
			return nil, err
		}
		v, err := r.value(depth + 1)
		if err != nil {
			return nil, err
		}
		out[keyString(k)] = v
	}
	return out, nil
}

// keyString is a map key as JavaScript names an object's property.
func keyString(k any) string {
	switch x := k.(type) {
	case string:
		return x
	case float64:
		return strconv.FormatFloat(x, 'g', -1, 64)
	case bool:
		return strconv.FormatBool(x)
	case nil:
		return "null"
	}
	return "[object]"
}

// ------------------------------------------------------------------ writing

// mpWriter appends msgpack the way the reference encoder (msgpackr, with
// plain maps) does, so that a batch is the same bytes in every SDK: an
// integer within uint32 or int32 in its smallest form, any other number as
// float64, strings and containers with their smallest headers.
type mpWriter struct{ b []byte }

func (w *mpWriter) mapHeader(n int) {
	switch {
	case n < 16:
		w.b = append(w.b, 0x80|byte(n))
	case n < 0x10000:
		w.b = append(w.b, 0xde, byte(n>>8), byte(n))
	default:
		w.b = append(w.b, 0xdf, byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
	}
}

func (w *mpWriter) arrayHeader(n int) {
	switch {
	case n < 16:
		w.b = append(w.b, 0x90|byte(n))
	case n < 0x10000:
		w.b = append(w.b, 0xdc, byte(n>>8), byte(n))
	default:
		w.b = append(w.b, 0xdd, byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
	}
}

func (w *mpWriter) str(s string) {
	n := len(s)
	switch {
	case n < 32:
		w.b = append(w.b, 0xa0|byte(n))
	case n < 0x100:
		w.b = append(w.b, 0xd9, byte(n))
	case n < 0x10000:
		w.b = append(w.b, 0xda, byte(n>>8), byte(n))
	default:
		w.b = append(w.b, 0xdb, byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
	}
	w.b = append(w.b, s...)
}

func (w *mpWriter) nil() { w.b = append(w.b, 0xc0) }

func (w *mpWriter) bool(v bool) {
	if v {
		w.b = append(w.b, 0xc3)
	} else {
		w.b = append(w.b, 0xc2)
	}
}

// int writes an integer that fits an int64 exactly (callers pass uint32, int32 or small values).
func (w *mpWriter) int(v int64) {
	switch {
	case v >= 0 && v < 0x80:
		w.b = append(w.b, byte(v))
	case v >= 0 && v < 0x100:
		w.b = append(w.b, 0xcc, byte(v))
	case v >= 0 && v < 0x10000:
		w.b = append(w.b, 0xcd, byte(v>>8), byte(v))
	case v >= 0 && v <= math.MaxUint32:
		w.b = append(w.b, 0xce, byte(v>>24), byte(v>>16), byte(v>>8), byte(v))
	case v < 0 && v >= -0x20:
		w.b = append(w.b, byte(v))
	case v < 0 && v >= -0x80:
		w.b = append(w.b, 0xd0, byte(v))
	case v < 0 && v >= -0x8000:
		w.b = append(w.b, 0xd1, byte(v>>8), byte(v))
	case v < 0 && v >= math.MinInt32:
		w.b = append(w.b, 0xd2, byte(v>>24), byte(v>>16), byte(v>>8), byte(v))
	default:
		w.float64Raw(float64(v))
	}
}

// num writes a number as JavaScript's encoder does: an integral value within
// int32 or uint32 as an integer, anything else as float64.
func (w *mpWriter) num(v float64) {
	if v == math.Trunc(v) && v >= math.MinInt32 && v <= math.MaxUint32 {
		w.int(int64(v))
		return
	}
	w.float64Raw(v)
}

func (w *mpWriter) float64Raw(v float64) {
	u := math.Float64bits(v)
	w.b = append(w.b, 0xcb, byte(u>>56), byte(u>>48), byte(u>>40), byte(u>>32), byte(u>>24), byte(u>>16), byte(u>>8), byte(u))
}
