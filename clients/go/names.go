package lars

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"unicode/utf8"
)

// FNV1a32 is FNV-1a, 32 bit, over the UTF-8 bytes of s (schemas/fnv.ts).
func FNV1a32(s string) uint32 {
	h := uint32(0x811c9dc5)
	for i := 0; i < len(s); i++ {
		h ^= uint32(s[i])
		h *= 0x01000193
	}
	return h
}

// fmix32 is murmur3's 32-bit finalizer.
func fmix32(h uint32) uint32 {
	h ^= h >> 16
	h *= 0x85ebca6b
	h ^= h >> 13
	h *= 0xc2b2ae35
	h ^= h >> 16
	return h
}

// Hash32 is the consistent-hash strategy's hash: fmix32(FNV1a32(s)).
func Hash32(s string) uint32 { return fmix32(FNV1a32(s)) }

// validUTF8 turns invalid bytes into U+FFFD, as JavaScript strings reach the hash.
func validUTF8(s string) string {
	if utf8.ValidString(s) {
		return s
	}
	return strings.ToValidUTF8(s, "\uFFFD")
}

// Partition is the report partition of a route: FNV1a32("<modid>.<cmdid>") mod partitions.
func Partition(modid, cmdid uint32, partitions int) int {
	var buf [24]byte
	b := strconv.AppendUint(buf[:0], uint64(modid), 10)
	b = append(b, '.')
	b = strconv.AppendUint(b, uint64(cmdid), 10)
	h := uint32(0x811c9dc5)
	for _, c := range b {
		h ^= uint32(c)
		h *= 0x01000193
	}
	return int(h % uint32(partitions))
}

var prefixPattern = regexp.MustCompile(`^[A-Za-z0-9_-]{1,32}$`)

// names builds the subjects and buckets of one prefix (schemas/subjects.ts).
type names struct {
	prefix string
	up     string
}

func newNames(prefix string) (names, error) {
	if !prefixPattern.MatchString(prefix) {
		return names{}, fmt.Errorf("lars: subject prefix must match %s, got %q", prefixPattern, prefix)
	}
	return names{prefix: prefix, up: strings.ReplaceAll(strings.ToUpper(prefix), "-", "_")}, nil
}

func (n names) report(partition int, modid, cmdid uint32) string {
	return fmt.Sprintf("%s.report.%d.%d.%d", n.prefix, partition, modid, cmdid)
}
func (n names) route(modid, cmdid uint32) string {
	return fmt.Sprintf("%s.route.%d.%d", n.prefix, modid, cmdid)
}
func (n names) routeKey(modid, cmdid uint32) string { return fmt.Sprintf("%d.%d", modid, cmdid) }
func (n names) routesBucket() string                { return n.prefix + "_routes" }
func (n names) selfRegBucket() string               { return n.prefix + "_selfreg" }
func (n names) reportsStream() string               { return n.up + "_REPORTS" }
func (n names) selfRegKey(modid, cmdid uint32, ip string, port int) string {
	return fmt.Sprintf("%d.%d.%s_%d", modid, cmdid, strings.ReplaceAll(ip, ".", "-"), port)
}

// ReportMsgID is a report batch's JetStream message id: <sender>/<instance>/<seq>.
func ReportMsgID(sender, instance string, seq uint64) string {
	return sender + "/" + instance + "/" + strconv.FormatUint(seq, 10)
}

// ParseReportMsgID splits a report message id at its last two '/'; ok is false when it is not one.
func ParseReportMsgID(id string) (sender, instance string, seq uint64, ok bool) {
	b := strings.LastIndexByte(id, '/')
	if b <= 0 {
		return "", "", 0, false
	}
	a := strings.LastIndexByte(id[:b], '/')
	if a <= 0 {
		return "", "", 0, false
	}
	s := id[b+1:]
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil || n < 1 || n > maxSafeInt {
		return "", "", 0, false
	}
	if a+1 == b {
		return "", "", 0, false
	}
	return id[:a], id[a+1 : b], n, true
}
