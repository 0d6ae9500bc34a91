package lars

import (
	"context"
	"errors"
	"fmt"
	"math/rand"
	"sync"
	"time"
)

// outbox keeps every report batch until JetStream has acknowledged it,
// across disconnects, reconnects and server failovers: the same rules as the
// TypeScript agent's (src/agent/outbox.ts).
//
// Batches are JetStream publishes on their report subject, up to `window`
// outstanding at once, each with its message id <sender>/<instance>/<seq>, so
// that a batch the stream has stored already is stored once: any batch may be
// published again at any time, and is whenever a publish may have been lost,
// without waiting for its ack timeout:
//   - The stream answers the publishes of one connection in the order they
//     were sent. An ack for a publish means every publish sent before it that
//     is still unanswered was lost on the way: those are published again at once.
//   - When nothing is acknowledged for `probe` while publishes are out, or a
//     publish fails, the outbox stalls: it holds the window and publishes only
//     the oldest batch again, every `probe` for the first `fastRetry` after
//     the last ack, then along `backoff`. The first ack ends the stall; by the
//     rule above it brings back everything older at once. Batches never sent
//     go out during a stall all the same (the route nodes take them on the
//     subject whether the stream stores them or not).
//   - A reconnect (kick) starts a stall with a probe at once.
//   - Batches acknowledged from just before a stall began until
//     `confirmDelay` after it ended are published once more then, with their
//     own message ids: a stream that has them stores nothing, one that lost
//     one (nats-server has been seen to lose a few acknowledged publishes when
//     its servers all restart) stores it.
//
// The ack timeout only frees a publish nobody answers. Only overflow of the
// bound drops reports: the oldest batches not on the wire first.

// batchPublisher puts one publish of a batch on the wire; its answer comes
// back through the outbox's answered(no, err). An error: it was not sent.
type batchPublisher interface {
	send(subject string, data []byte, msgID string, no uint64) error
}

// outboxClock is the outbox's time: its clock and its timers (tests inject manual ones).
type outboxClock struct {
	now       func() time.Time
	afterFunc func(d time.Duration, f func()) interface{ Stop() bool }
}

func realClock(now func() time.Time) outboxClock {
	return outboxClock{now: now, afterFunc: func(d time.Duration, f func()) interface{ Stop() bool } { return time.AfterFunc(d, f) }}
}

// outboxConfig: the outbox's options, resolved (Options says what each means).
type outboxConfig struct {
	sender, instance string
	window           int
	maxReports       int
	// reports held elsewhere that count against the bound (the batcher's buffers)
	extraPending func() int
	probe        time.Duration
	fastRetry    time.Duration
	backoff      []time.Duration
	// 0: never
	confirmDelay time.Duration
	ackTimeout   time.Duration
	log          Logger
	clock        outboxClock
	// jitter of the backoff, [0, 1)
	random func() float64
}

type outboxStats struct {
	pendingReports, pendingBatches                               int
	ackedBatches, ackedReports, retried, drops, confirmedBatches uint64
}

// wireEntry is one publish, in the order they were sent.
type wireEntry struct {
	no uint64
	e  *pendingBatch
	at time.Time
}

type failure struct {
	no  uint64
	err error
}

// errAckTimeout: no answer to a publish within AckTimeout.
var errAckTimeout = errors.New("lars: no acknowledgement in time")

type outbox struct {
	mu  sync.Mutex
	c   outboxConfig
	pub batchPublisher
	rl  rateLog

	seq       uint64
	queue     batchQueue
	unsettled map[uint64]*pendingBatch
	order     seqList
	// every publish not answered yet, by number, and in the order sent
	sends map[uint64]*pendingBatch
	wire  []wireEntry
	// batches whose latest publish is out, and their reports
	outstanding     int
	inflightReports int
	sendCount       uint64
	// publishes that failed as they were made: handled once the current step is done
	failed []failure

	stalled        bool
	nextProbeAt    time.Time
	slowProbes     int
	lastGoodAt     time.Time
	lastProgressAt time.Time
	wake           interface{ Stop() bool }
	wakeAt         time.Time

	acked        ackedBatches
	stallFrom    time.Time // zero: none since the last confirmation
	confirmTimer interface{ Stop() bool }

	stopped          bool
	closedConnection bool
	changed          chan struct{} // closed and replaced on every settlement
	st               outboxStats
}

func newOutbox(c outboxConfig) *outbox {
	if c.window < 1 {
		c.window = 1
	}
	if c.maxReports < 1 {
		c.maxReports = 1
	}
	if c.extraPending == nil {
		c.extraPending = func() int { return 0 }
	}
	if c.log == nil {
		c.log = nopLogger{}
	}
	if c.clock.now == nil {
		c.clock = realClock(time.Now)
	}
	if c.random == nil {
		c.random = rand.Float64
	}
	if len(c.backoff) == 0 {
		c.backoff = []time.Duration{500 * time.Millisecond, time.Second, 2 * time.Second, 5 * time.Second}
	}
	now := c.clock.now()
	return &outbox{c: c, rl: rateLog{log: c.log, interval: 10 * time.Second, last: map[string]time.Time{}},
		unsettled: map[uint64]*pendingBatch{}, sends: map[uint64]*pendingBatch{}, changed: make(chan struct{}),
		lastGoodAt: now, lastProgressAt: now}
}

// add queues an encoded batch of `reports` reports and sends what the window allows.
func (o *outbox) add(subject string, data []byte, reports int) {
	o.mu.Lock()
	defer o.unlock()
	if o.stopped {
		o.st.drops += uint64(reports)
		return
	}
	o.seq++
	e := &pendingBatch{seq: o.seq, msgID: ReportMsgID(o.c.sender, o.c.instance, o.seq), subject: subject, data: data, reports: reports}
	o.unsettled[e.seq] = e
	o.order.push(e)
	o.queue.push(e)
	o.st.pendingReports += reports
	o.enforceBound()
	o.pump()
}

// unlock handles the publishes that failed as they were made, then releases the lock.
func (o *outbox) unlock() {
	for len(o.failed) > 0 {
		f := o.failed[0]
		o.failed = o.failed[1:]
		o.fail(f.no, f.err)
	}
	o.mu.Unlock()
}

// kick: the connection is back; what was out on the old one may be lost. Probes at once with the oldest batch.
func (o *outbox) kick() {
	o.mu.Lock()
	defer o.unlock()
	if o.stopped {
		return
	}
	now := o.c.clock.now()
	o.lastGoodAt = now
	o.slowProbes = 0
	if len(o.unsettled) == 0 {
		return
	}
	o.beginStall(now)
	o.probeNow(now)
	o.arm()
}

// answered is the stream's answer to publish number no: nil an ack.
func (o *outbox) answered(no uint64, err error) {
	o.mu.Lock()
	defer o.unlock()
	if err == nil {
		o.ack(no)
	} else {
		o.fail(no, err)
	}
}

func (o *outbox) enforceBound() {
	dropped, batches := 0, 0
	for o.st.pendingReports+o.c.extraPending() > o.c.maxReports && o.queue.size > 0 {
		e := o.queue.shift()
		e.settled = true
		delete(o.unsettled, e.seq)
		o.st.pendingReports -= e.reports
		// a confirmation given up is no report lost: the batch was acknowledged once
		if e.confirming {
			continue
		}
		o.st.drops += uint64(e.reports)
		dropped += e.reports
		batches++
	}
	if dropped > 0 {
		o.rl.emit(o.c.clock.now(), "warn", "overflow", "more reports unacknowledged than MaxPendingReports; the oldest are dropped", "reports", dropped, "batches", batches, "maxPendingReports", o.c.maxReports)
		o.settle()
	}
}

func (o *outbox) pump() {
	if o.stopped {
		return
	}
	if !o.stalled {
		for o.outstanding < o.c.window && o.queue.size > 0 {
			e := o.queue.peek()
			if !o.fits(e) {
				break
			}
			o.queue.shift()
			o.send(e)
		}
	} else {
		// during a stall, batches never sent go out all the same; only retries wait for the probe
		o.queue.takeFresh(o.fits, o.send)
	}
	o.arm()
}

// fits: what is on the wire stays within the bound too (a batch alone always goes).
func (o *outbox) fits(e *pendingBatch) bool {
	return o.outstanding == 0 || o.inflightReports+e.reports <= o.c.maxReports
}

func (o *outbox) send(e *pendingBatch) {
	if e.attempts > 0 {
		o.st.retried++
	}
	e.attempts++
	now := o.c.clock.now()
	if !e.inFlight {
		if o.outstanding == 0 {
			o.lastProgressAt = now
		}
		e.inFlight = true
		o.outstanding++
		o.inflightReports += e.reports
	}
	o.sendCount++
	no := o.sendCount
	e.sendNo = no
	o.sends[no] = e
	o.wire = append(o.wire, wireEntry{no, e, now})
	if o.pub == nil {
		o.failed = append(o.failed, failure{no, errors.New("lars: no publisher")})
		return
	}
	if err := o.pub.send(e.subject, e.data, e.msgID, no); err != nil {
		o.failed = append(o.failed, failure{no, err})
	}
}

// land takes a batch off the wire (its latest publish answered, or the batch settled).
func (o *outbox) land(e *pendingBatch) {
	if !e.inFlight {
		return
	}
	e.inFlight = false
	o.outstanding--
	o.inflightReports -= e.reports
}

func (o *outbox) ack(no uint64) {
	e := o.sends[no]
	delete(o.sends, no)
	if o.stopped {
		return
	}
	now := o.c.clock.now()
	o.lastGoodAt, o.lastProgressAt = now, now
	o.stalled = false
	o.slowProbes = 0
	if e != nil && !e.settled {
		e.settled = true
		o.land(e)
		o.queue.remove(e)
		delete(o.unsettled, e.seq)
		o.st.pendingReports -= e.reports
		if e.confirming {
			o.st.confirmedBatches++
		} else {
			o.st.ackedBatches++
			o.st.ackedReports += uint64(e.reports)
			o.keepAcked(e, now)
		}
	}
	if !o.stallFrom.IsZero() {
		o.scheduleConfirm()
	}
	// sent before this one and still unanswered: lost on the way (the stream answers in order)
	var lost []*pendingBatch
	i := 0
	for ; i < len(o.wire) && o.wire[i].no <= no; i++ {
		w := o.wire[i]
		if _, open := o.sends[w.no]; !open {
			continue
		}
		delete(o.sends, w.no)
		if w.e.inFlight && w.e.sendNo == w.no && !w.e.settled {
			lost = append(lost, w.e)
		}
	}
	o.dropWire(i)
	for _, x := range lost {
		o.send(x)
	}
	o.settle()
	o.pump()
}

func (o *outbox) dropWire(n int) {
	if n == 0 {
		return
	}
	for k := 0; k < n; k++ {
		o.wire[k] = wireEntry{}
	}
	o.wire = o.wire[n:]
}

func (o *outbox) fail(no uint64, err error) {
	e := o.sends[no]
	delete(o.sends, no)
	// an answer for a settled batch, or for a publish a newer one of the same batch replaced, changes nothing
	if e == nil || o.stopped || e.settled || no != e.sendNo {
		return
	}
	o.land(e)
	o.queue.requeue(e)
	now := o.c.clock.now()
	kind := classifyPublishError(err)
	o.logFailure(now, kind, e, err)
	if kind == publishClosed {
		// nothing will reconnect this connection: keep the batches for Close to count; waiting flushes fail now
		o.stopped = true
		o.closedConnection = true
		o.disarm()
		o.settle()
		return
	}
	if !o.stalled {
		o.beginStall(now)
		o.nextProbeAt = now.Add(o.probeDelay(now))
	}
	o.pump()
}

func (o *outbox) settle() {
	close(o.changed)
	o.changed = make(chan struct{})
}

// oldestSeq is the seq of the oldest unsettled batch, or the highest uint64 when none.
func (o *outbox) oldestSeq() uint64 {
	if e := o.order.oldest(); e != nil {
		return e.seq
	}
	return ^uint64(0)
}

// settled waits until every batch added so far is acknowledged or dropped;
// ErrClosed when the connection closed for good, an error naming the reports
// pending when ctx ends first.
func (o *outbox) settled(ctx context.Context) error {
	o.mu.Lock()
	upTo := o.seq
	for {
		if o.oldestSeq() > upTo {
			o.mu.Unlock()
			return nil
		}
		if o.closedConnection {
			o.mu.Unlock()
			return ErrClosed
		}
		if o.stopped {
			o.mu.Unlock()
			return nil
		}
		ch := o.changed
		o.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("lars: report batches not acknowledged in time (%d reports pending): %w", o.stats().pendingReports, ctx.Err())
		}
		o.mu.Lock()
	}
}

func (o *outbox) stats() outboxStats {
	o.mu.Lock()
	defer o.mu.Unlock()
	s := o.st
	s.pendingBatches = len(o.unsettled)
	return s
}

// abandon stops sending; what is not acknowledged is dropped and counted (a confirmation given up is no report lost).
func (o *outbox) abandon() int {
	o.mu.Lock()
	o.stopped = true
	o.disarm()
	if o.confirmTimer != nil {
		o.confirmTimer.Stop()
		o.confirmTimer = nil
	}
	o.acked.clear()
	n := 0
	for _, e := range o.unsettled {
		e.settled = true
		if !e.confirming {
			n += e.reports
		}
	}
	o.unsettled = map[uint64]*pendingBatch{}
	o.order.clear()
	o.queue.clear()
	o.sends = map[uint64]*pendingBatch{}
	o.wire = nil
	o.failed = nil
	o.st.pendingReports = 0
	o.st.drops += uint64(n)
	o.settle()
	o.mu.Unlock()
	if n > 0 {
		o.c.log.Warn("closing with unacknowledged report batches; they are dropped", "reports", n)
	}
	return n
}
