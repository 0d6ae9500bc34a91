package lars

import (
	"bytes"
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
)

// jsPublisher publishes report batches to JetStream and hands every answer
// to the outbox in the order the server sent them (src/agent/publisher.ts):
// each publish carries its message id and a reply subject under one inbox
// of the agent's, numbered by the publish, and one subscription takes every
// answer. In order matters: an ack for a publish tells the outbox that
// every publish sent before it and still unanswered was lost.
type jsPublisher struct {
	nc     *nats.Conn
	prefix string
	sub    *nats.Subscription
}

// newJSPublisher subscribes to the answers (handed to answered) on nc.
func newJSPublisher(nc *nats.Conn, answered func(no uint64, err error)) (*jsPublisher, error) {
	p := &jsPublisher{nc: nc, prefix: nc.NewInbox() + "."}
	sub, err := nc.Subscribe(p.prefix+"*", func(m *nats.Msg) {
		no, err := strconv.ParseUint(m.Subject[len(p.prefix):], 10, 64)
		if err != nil {
			return
		}
		answered(no, pubAckError(m))
	})
	if err != nil {
		return nil, err
	}
	// the outbox bounds what is out; the subscription must not drop answers
	_ = sub.SetPendingLimits(-1, -1)
	p.sub = sub
	return p, nil
}

var msgIDHeader = "Nats-Msg-Id"

func (p *jsPublisher) send(subject string, data []byte, msgID string, no uint64) error {
	m := &nats.Msg{Subject: subject, Reply: p.prefix + strconv.FormatUint(no, 10), Data: data, Header: nats.Header{msgIDHeader: []string{msgID}}}
	return p.nc.PublishMsg(m)
}

func (p *jsPublisher) close() {
	if p != nil && p.sub != nil {
		_ = p.sub.Unsubscribe()
	}
}

// pubAck is the stream's answer to a publish.
type pubAck struct {
	Stream string         `json:"stream"`
	Error  *nats.APIError `json:"error,omitempty"`
}

var ackPrefix = []byte(`{"stream":"`)
var errorKey = []byte(`"error"`)

// pubAckError is nil for an acknowledgement, else why the publish was not stored.
func pubAckError(m *nats.Msg) error {
	if len(m.Data) == 0 && m.Header.Get("Status") == "503" {
		return nats.ErrNoResponders
	}
	// an ack names its stream first (a refusal starts with its error): no JSON decoding
	if len(m.Data) > len(ackPrefix)+1 && bytes.HasPrefix(m.Data, ackPrefix) && m.Data[len(ackPrefix)] != '"' && !bytes.Contains(m.Data, errorKey) {
		return nil
	}
	var a pubAck
	if err := json.Unmarshal(m.Data, &a); err != nil {
		return nats.ErrInvalidJSAck
	}
	if a.Error != nil {
		return a.Error
	}
	if a.Stream == "" {
		return nats.ErrInvalidJSAck
	}
	return nil
}

// publishFailure: why a publish was not acknowledged.
type publishFailure string

const (
	// nothing answers on the subject: no stream captures it
	publishNoStream publishFailure = "no_stream"
	// no ack in time: server away, restarting, or the only listener a core subscriber
	publishTimeout publishFailure = "timeout"
	// the stream refused the message
	publishRefused publishFailure = "refused"
	// the connection is closed for good
	publishClosed publishFailure = "closed"
	publishOther  publishFailure = "other"
)

func classifyPublishError(err error) publishFailure {
	var api *nats.APIError
	switch {
	case errors.Is(err, nats.ErrNoResponders):
		return publishNoStream
	case errors.Is(err, errAckTimeout), errors.Is(err, nats.ErrTimeout):
		return publishTimeout
	case errors.Is(err, nats.ErrConnectionClosed), errors.Is(err, nats.ErrConnectionDraining):
		return publishClosed
	case errors.As(err, &api):
		return publishRefused
	}
	return publishOther
}

// logFailure logs a failed publish, at most one line per kind per interval.
func (o *outbox) logFailure(now time.Time, kind publishFailure, e *pendingBatch, err error) {
	args := []any{"subject", e.subject, "pendingReports", o.st.pendingReports, "pendingBatches", len(o.unsettled)}
	switch kind {
	case publishNoStream:
		o.rl.emit(now, "error", string(kind), "no JetStream stream captures "+e.subject+": report batches are held and retried; start a route node ('lars node') or the sink ('lars sink'): either creates the reports stream", args...)
	case publishTimeout:
		o.rl.emit(now, "warn", string(kind), "report batch not acknowledged in time (server away or restarting, or no stream captures the subject); retrying", args...)
	case publishClosed:
		o.rl.emit(now, "error", string(kind), "the connection is closed; report batches can no longer be sent", args...)
	default:
		o.rl.emit(now, "warn", string(kind), "report batch publish failed; retrying", append(args, "err", err.Error())...)
	}
}

// rateLog logs at most one line per kind per interval.
type rateLog struct {
	mu       sync.Mutex
	log      Logger
	interval time.Duration
	last     map[string]time.Time
}

func (r *rateLog) emit(now time.Time, level, kind, msg string, args ...any) {
	r.mu.Lock()
	if t, ok := r.last[kind]; ok && now.Sub(t) < r.interval {
		r.mu.Unlock()
		return
	}
	r.last[kind] = now
	r.mu.Unlock()
	switch strings.ToLower(level) {
	case "error":
		r.log.Error(msg, args...)
	case "info":
		r.log.Info(msg, args...)
	default:
		r.log.Warn(msg, args...)
	}
}
