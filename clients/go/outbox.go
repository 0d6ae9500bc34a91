package lars

import (
	"context"
	"sort"
	"sync"
	"time"
)

// outbox keeps every report batch until JetStream has acknowledged it
// (src/agent/outbox.ts): up to `window` publishes outstanding at once, each
// with its message id <sender>/<instance>/<seq>, so that a batch published
// again is stored once. A failed publish (no stream, the connection away,
// no ack within AckTimeout), or no ack at all for RetryInterval while
// publishes are out, stalls the outbox: it holds the window and publishes the
// oldest batch again, every RetryInterval, until an ack ends the stall; a
// reconnect probes at once. Only overflow of the bound drops
// reports, the oldest batches not on the wire first, and counts them.

// publishFunc publishes one batch and returns once the stream acknowledged it.
type publishFunc func(ctx context.Context, subject string, data []byte, msgID string) error

type pendingBatch struct {
	seq      uint64
	msgID    string
	subject  string
	data     []byte
	reports  int
	attempts int
	sends    int  // publishes of it not answered yet
	queued   bool // in the queue
}

type outboxStats struct {
	pendingReports, pendingBatches             int
	ackedBatches, ackedReports, retried, drops uint64
}

type outbox struct {
	mu           sync.Mutex
	publish      publishFunc
	sender       string
	instance     string
	window       int
	maxReports   int
	extraPending func() int
	retry        time.Duration
	log          Logger

	seq            uint64
	queue          []*pendingBatch // not on the wire, in seq order
	unsettled      map[uint64]*pendingBatch
	inflight       int
	pendingReports int
	stalled        bool
	probeTimer     *time.Timer
	lastProgress   time.Time   // last ack, or the first publish while none was out
	watchdog       *time.Timer // the stall check while publishes are out
	stopped        bool
	changed        chan struct{} // closed and replaced on every settlement
	ctx            context.Context
	cancel         context.CancelFunc
	wg             sync.WaitGroup
	st             outboxStats
	lastDropLog    time.Time
}

func newOutbox(publish publishFunc, sender, instance string, window, maxReports int, extraPending func() int, retry time.Duration, log Logger) *outbox {
	ctx, cancel := context.WithCancel(context.Background())
	return &outbox{publish: publish, sender: sender, instance: instance, window: window, maxReports: maxReports, extraPending: extraPending, retry: retry, log: log,
		unsettled: map[uint64]*pendingBatch{}, changed: make(chan struct{}), ctx: ctx, cancel: cancel}
}

func (o *outbox) add(subject string, data []byte, reports int) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.stopped {
		o.st.drops += uint64(reports)
		return
	}
	o.seq++
	e := &pendingBatch{seq: o.seq, msgID: ReportMsgID(o.sender, o.instance, o.seq), subject: subject, data: data, reports: reports}
	o.unsettled[e.seq] = e
	e.queued = true
	o.queue = append(o.queue, e)
	o.pendingReports += reports
	o.enforceBound()
	o.pump()
}

// enforceBound drops the oldest batches not on the wire while more reports are pending than the bound.
func (o *outbox) enforceBound() {
	dropped := 0
	for o.pendingReports+o.extraPending() > o.maxReports && len(o.queue) > 0 {
		e := o.queue[0]
		o.queue = o.queue[1:]
		e.queued = false
		delete(o.unsettled, e.seq)
		o.pendingReports -= e.reports
		dropped += e.reports
	}
	if dropped > 0 {
		o.st.drops += uint64(dropped)
		o.settle()
		if time.Since(o.lastDropLog) > 10*time.Second {
			o.lastDropLog = time.Now()
			o.log.Warn("more reports unacknowledged than MaxPendingReports; the oldest are dropped", "reports", dropped, "maxPendingReports", o.maxReports)
		}
	}
}

func (o *outbox) pump() {
	if o.stopped || o.stalled {
		return
	}
	for o.inflight < o.window && len(o.queue) > 0 {
		e := o.queue[0]
		o.queue = o.queue[1:]
		e.queued = false
		if _, ok := o.unsettled[e.seq]; ok {
			o.send(e)
		}
	}
}

// send puts e on the wire (o.mu held).
func (o *outbox) send(e *pendingBatch) {
	if e.attempts > 0 {
		o.st.retried++
	}
	e.attempts++
	e.sends++
	if o.inflight == 0 {
		o.lastProgress = time.Now()
	}
	o.inflight++
	o.armWatchdog()
	o.wg.Add(1)
	go func() {
		defer o.wg.Done()
		err := o.publish(o.ctx, e.subject, e.data, e.msgID)
		o.mu.Lock()
		defer o.mu.Unlock()
		o.answered(e, err)
	}()
}

// armWatchdog: no ack for RetryInterval while publishes are out is a stall
// (a stream leader lost, a server away): the oldest batch is published again
// then, without waiting for the publishes' ack timeout (o.mu held).
func (o *outbox) armWatchdog() { o.armWatchdogIn(o.retry) }

func (o *outbox) armWatchdogIn(d time.Duration) {
	if o.watchdog != nil || o.stopped {
		return
	}
	o.watchdog = time.AfterFunc(d, func() {
		o.mu.Lock()
		defer o.mu.Unlock()
		o.watchdog = nil
		if o.stopped || o.inflight == 0 {
			return
		}
		if wait := o.retry - time.Since(o.lastProgress); wait > 0 {
			o.armWatchdogIn(wait)
			return
		}
		if !o.stalled {
			o.stalled = true
			o.log.Warn("report batches not acknowledged in time (stream leader lost, or server away); publishing the oldest again", "pendingReports", o.pendingReports)
		}
		o.probe()
		o.armWatchdog()
	})
}

func (o *outbox) answered(e *pendingBatch, err error) {
	e.sends--
	o.inflight--
	if o.stopped {
		return
	}
	if _, ok := o.unsettled[e.seq]; !ok {
		if err == nil {
			o.progress()
		}
		return
	}
	if err == nil {
		delete(o.unsettled, e.seq)
		o.pendingReports -= e.reports
		o.st.ackedBatches++
		o.st.ackedReports += uint64(e.reports)
		o.settle()
		o.progress()
		o.pump()
		return
	}
	// back in the queue, in seq order, unless another publish of it is still out or it is queued already
	if e.sends == 0 && !e.queued {
		i := sort.Search(len(o.queue), func(i int) bool { return o.queue[i].seq > e.seq })
		o.queue = append(o.queue, nil)
		copy(o.queue[i+1:], o.queue[i:])
		o.queue[i] = e
		e.queued = true
	}
	if !o.stalled {
		o.stalled = true
		o.log.Warn("report batch not acknowledged; holding the window and retrying the oldest batch", "err", err.Error(), "pendingReports", o.pendingReports)
	}
	o.armProbe(o.retry)
}

// progress: an ack came; a stall ends (o.mu held).
func (o *outbox) progress() {
	o.lastProgress = time.Now()
	if o.stalled {
		o.stalled = false
		if o.probeTimer != nil {
			o.probeTimer.Stop()
			o.probeTimer = nil
		}
	}
}

func (o *outbox) armProbe(d time.Duration) {
	if o.probeTimer != nil || o.stopped {
		return
	}
	o.probeTimer = time.AfterFunc(d, func() {
		o.mu.Lock()
		defer o.mu.Unlock()
		o.probeTimer = nil
		o.probe()
	})
}

// probe publishes the oldest unsettled batch again, on the wire or not (o.mu held):
// its message id makes a second copy harmless.
func (o *outbox) probe() {
	if o.stopped || !o.stalled || len(o.unsettled) == 0 {
		return
	}
	e := o.unsettled[o.oldestUnsettled()]
	if e.queued {
		for i, x := range o.queue {
			if x == e {
				o.queue = append(o.queue[:i], o.queue[i+1:]...)
				break
			}
		}
		e.queued = false
	}
	o.send(e)
	o.lastProgress = time.Now()
}

// kick: the connection is back; probe now.
func (o *outbox) kick() {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.probeTimer != nil {
		o.probeTimer.Stop()
		o.probeTimer = nil
	}
	if o.stalled {
		o.probe()
	}
}

func (o *outbox) settle() {
	close(o.changed)
	o.changed = make(chan struct{})
}

func (o *outbox) oldestUnsettled() uint64 {
	var min uint64 = ^uint64(0)
	for k := range o.unsettled {
		if k < min {
			min = k
		}
	}
	return min
}

// settled waits until every batch added so far is acknowledged or dropped.
func (o *outbox) settled(ctx context.Context) error {
	o.mu.Lock()
	upTo := o.seq
	for {
		if o.oldestUnsettled() > upTo || o.stopped {
			o.mu.Unlock()
			return nil
		}
		ch := o.changed
		o.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
		o.mu.Lock()
	}
}

func (o *outbox) stats() outboxStats {
	o.mu.Lock()
	defer o.mu.Unlock()
	s := o.st
	s.pendingReports = o.pendingReports
	s.pendingBatches = len(o.unsettled)
	return s
}

// abandon stops sending; what is not acknowledged is dropped and counted.
func (o *outbox) abandon() int {
	o.mu.Lock()
	o.stopped = true
	if o.probeTimer != nil {
		o.probeTimer.Stop()
		o.probeTimer = nil
	}
	if o.watchdog != nil {
		o.watchdog.Stop()
		o.watchdog = nil
	}
	n := 0
	for _, e := range o.unsettled {
		n += e.reports
	}
	o.unsettled = map[uint64]*pendingBatch{}
	o.queue = nil
	o.pendingReports = 0
	o.st.drops += uint64(n)
	o.settle()
	o.mu.Unlock()
	o.cancel()
	o.wg.Wait()
	if n > 0 {
		o.log.Warn("closing with unacknowledged report batches; they are dropped", "reports", n)
	}
	return n
}
