package lars

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
)

// ReportDelivery: how report batches reach the reports stream.
type ReportDelivery string

const (
	// ReportDeliveryAcked: JetStream publishes, acknowledged, kept and retried until acknowledged (the default).
	ReportDeliveryAcked ReportDelivery = "acked"
	// ReportDeliveryCore: plain core publishes (captured by the stream, never acknowledged): what a server restart eats is lost.
	ReportDeliveryCore ReportDelivery = "core"
)

// Options of Connect. The zero value of every field is its default.
type Options struct {
	// Servers: NATS URLs, comma separated (default LARS_NATS_URL, else nats://127.0.0.1:4222).
	Servers string
	// User and Password (default LARS_NATS_USER, LARS_NATS_PASS).
	User, Password string
	// Token (default LARS_NATS_TOKEN).
	Token string
	// NKeySeedFile: a file holding an NKey seed (default LARS_NATS_NKEY).
	NKeySeedFile string
	// CredsFile: a .creds file, JWT and seed (default LARS_NATS_CREDS).
	CredsFile string
	// TLS: CA file, client certificate and key (default LARS_NATS_TLS_CA, LARS_NATS_TLS_CERT, LARS_NATS_TLS_KEY).
	TLSCAFile, TLSCertFile, TLSKeyFile string

	// Prefix of every subject and bucket (default "lars").
	Prefix string
	// Partitions of the reports (default 64; every agent and node of a cluster the same).
	Partitions int
	// AgentID: the sender of every report batch (default a random id).
	AgentID string
	// Zone: the caller's zone, stamped on reports; picks prefer it unless NoZonePreference.
	Zone string
	// NoZonePreference: with Zone set, pick without preferring it.
	NoZonePreference bool
	// ZoneMinHealthyPercent: local healthy share under which picks spill to other zones (default 70).
	ZoneMinHealthyPercent int
	// Strategy for every route, over the one a route names (default: the route's, else p2c_ewma).
	Strategy string
	// Timeout: the callers' timeout; a failed call counts as at least this slow (default 1s).
	Timeout time.Duration
	// ProbeTrials: trial calls a probing host may have in flight from this agent (default 1).
	ProbeTrials int
	// BatchMaxReports: a batch is sent at this many reports (default 1000, at most 10000)...
	BatchMaxReports int
	// BatchMaxDelay: ...or when its oldest report is this old (default 20ms).
	BatchMaxDelay time.Duration
	// LoadTimeout: how long GetHost waits for a route on its first use (default 2s).
	LoadTimeout time.Duration
	// MaxPendingReports: reports buffered or unacknowledged at most; beyond it the oldest are dropped and counted (default 100000).
	MaxPendingReports int
	// ReportDelivery: ReportDeliveryAcked (the default, ""): JetStream
	// publishes kept until acknowledged; ReportDeliveryCore: plain publishes
	// (captured by the stream, never acknowledged: what a server restart eats is lost).
	ReportDelivery ReportDelivery
	// PublishWindow: acknowledged publishes outstanding at once (default 64).
	PublishWindow int
	// AckTimeout: how long a publish waits for its ack before it is given up (default 5s).
	// A lost publish is retried long before that: see RetryInterval.
	AckTimeout time.Duration
	// RetryInterval: no ack for this long while publishes are out, or a
	// failed publish, is a stall (a stream leader lost, a server away): the
	// oldest batch is published again now and at this interval until an ack
	// comes, which brings back every publish sent before it that is still
	// unanswered (default 250ms).
	RetryInterval time.Duration
	// RetryBackoff: a stall longer than 20s since the last ack retries after
	// these pauses instead, by retry, each with jitter (n/2 + random·n)
	// (default 500ms, 1s, 2s, 5s).
	RetryBackoff []time.Duration
	// ConfirmDelay: this long after a stall ended, the batches acknowledged
	// around it are published once more (same message ids: a stream that has
	// them stores nothing) to confirm them (default 5s; negative: never).
	ConfirmDelay time.Duration
	// FlushTimeout: how long Flush waits for acks when its context has no deadline (default 30s).
	FlushTimeout time.Duration
	// CloseTimeout: how long Close waits for acks when its context has no deadline (default 5s).
	CloseTimeout time.Duration
	// Conn: an open connection to use (the agent will not close it; the
	// connection options above are then unused). Its reconnect handler is
	// kept and called before the agent's.
	Conn *nats.Conn
	// KeepEmptyUpdates: apply a route update that leaves no pickable host without a reason (default: keep the last state with hosts).
	KeepEmptyUpdates bool

	// Logger (default none). A *slog.Logger fits.
	Logger Logger
	// Random source of the strategies (default mulberry32 seeded from crypto/rand). Called under a route's lock.
	Random func() Random
	// Now: the clock (default time.Now).
	Now func() time.Time
}

type resolved struct {
	Options
	pickZone string
	fb       feedbackOptions
	// no Now given: the agent's clock is base (wall and monotonic) plus the monotonic time since
	ownClock bool
	base     time.Time
	baseMs   float64
}

func env(v *string, name string) {
	if *v == "" {
		*v = os.Getenv(name)
	}
}

func randomID(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func resolve(o Options) (resolved, error) {
	env(&o.Servers, "LARS_NATS_URL")
	if o.Servers == "" {
		o.Servers = "nats://127.0.0.1:4222"
	}
	env(&o.User, "LARS_NATS_USER")
	env(&o.Password, "LARS_NATS_PASS")
	env(&o.Token, "LARS_NATS_TOKEN")
	env(&o.NKeySeedFile, "LARS_NATS_NKEY")
	env(&o.CredsFile, "LARS_NATS_CREDS")
	env(&o.TLSCAFile, "LARS_NATS_TLS_CA")
	env(&o.TLSCertFile, "LARS_NATS_TLS_CERT")
	env(&o.TLSKeyFile, "LARS_NATS_TLS_KEY")
	env(&o.Prefix, "LARS_PREFIX")
	if o.Prefix == "" {
		o.Prefix = "lars"
	}
	if o.Partitions == 0 {
		o.Partitions = 64
	}
	if o.Partitions < 1 || o.Partitions > 4096 {
		return resolved{}, fmt.Errorf("lars: Partitions must be within 1-4096, got %d", o.Partitions)
	}
	if o.AgentID == "" {
		o.AgentID = "agent-" + randomID(6)
	}
	if len(o.AgentID) > maxSender || strings.ContainsAny(o.AgentID, " \t\n") {
		return resolved{}, fmt.Errorf("lars: AgentID must be 1-128 characters without spaces, got %q", o.AgentID)
	}
	if o.ZoneMinHealthyPercent == 0 {
		o.ZoneMinHealthyPercent = zoneMinHealthyPercent
	}
	if o.ZoneMinHealthyPercent < 0 || o.ZoneMinHealthyPercent > 100 {
		return resolved{}, fmt.Errorf("lars: ZoneMinHealthyPercent must be within 0-100, got %d", o.ZoneMinHealthyPercent)
	}
	switch o.Strategy {
	case "", StrategySwrr, StrategyP2c, StrategyP2cEwma, StrategyHash, StrategyLars:
	default:
		return resolved{}, fmt.Errorf("lars: unknown Strategy %q", o.Strategy)
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	def(&o.Timeout, time.Second)
	def(&o.BatchMaxDelay, 20*time.Millisecond)
	def(&o.LoadTimeout, 2*time.Second)
	def(&o.AckTimeout, 5*time.Second)
	def(&o.RetryInterval, 250*time.Millisecond)
	def(&o.CloseTimeout, 5*time.Second)
	def(&o.FlushTimeout, 30*time.Second)
	def(&o.ConfirmDelay, 5*time.Second)
	if o.ConfirmDelay < 0 {
		o.ConfirmDelay = 0
	}
	if len(o.RetryBackoff) == 0 {
		o.RetryBackoff = []time.Duration{500 * time.Millisecond, time.Second, 2 * time.Second, 5 * time.Second}
	}
	for _, d := range o.RetryBackoff {
		if d <= 0 {
			return resolved{}, fmt.Errorf("lars: RetryBackoff must be positive durations, got %v", o.RetryBackoff)
		}
	}
	switch o.ReportDelivery {
	case "":
		o.ReportDelivery = ReportDeliveryAcked
	case ReportDeliveryAcked, ReportDeliveryCore:
	default:
		return resolved{}, fmt.Errorf("lars: unknown ReportDelivery %q", o.ReportDelivery)
	}
	if o.Timeout < 0 {
		return resolved{}, errors.New("lars: Timeout must be positive")
	}
	if o.ProbeTrials < 1 {
		o.ProbeTrials = 1
	}
	if o.BatchMaxReports <= 0 {
		o.BatchMaxReports = 1000
	}
	if o.BatchMaxReports > maxReports {
		o.BatchMaxReports = maxReports
	}
	if o.MaxPendingReports <= 0 {
		o.MaxPendingReports = 100000
	}
	if o.PublishWindow <= 0 {
		o.PublishWindow = 64
	}
	if o.Logger == nil {
		o.Logger = nopLogger{}
	}
	if o.Random == nil {
		o.Random = newRandom
	}
	r := resolved{Options: o, fb: feedbackOptions{timeoutMs: float64(o.Timeout) / 1e6, decayMs: 10000}}
	if o.Now == nil {
		r.Now = time.Now
		r.ownClock, r.base = true, time.Now()
		r.baseMs = float64(r.base.UnixNano()) / 1e6
	}
	if o.Zone != "" && !o.NoZonePreference {
		r.pickZone = o.Zone
	}
	return r, nil
}
