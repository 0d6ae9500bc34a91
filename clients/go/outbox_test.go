package lars

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
)

// The outbox's rules (src/agent/outbox.ts) on a manual clock, with a
// publisher that records every publish and a test that answers them.

type manualTimer struct {
	c       *manualClock
	at      time.Time
	f       func()
	stopped bool
	id      int
}

func (t *manualTimer) Stop() bool {
	t.c.mu.Lock()
	defer t.c.mu.Unlock()
	was := !t.stopped
	t.stopped = true
	return was
}

type manualClock struct {
	mu     sync.Mutex
	t      time.Time
	timers []*manualTimer
	n      int
}

func newManualClock() *manualClock { return &manualClock{t: time.Unix(1_700_000_000, 0)} }

func (c *manualClock) clock() outboxClock {
	return outboxClock{
		now: func() time.Time {
			c.mu.Lock()
			defer c.mu.Unlock()
			return c.t
		},
		afterFunc: func(d time.Duration, f func()) interface{ Stop() bool } {
			c.mu.Lock()
			defer c.mu.Unlock()
			c.n++
			t := &manualTimer{c: c, at: c.t.Add(d), f: f, id: c.n}
			c.timers = append(c.timers, t)
			return t
		},
	}
}

// advance moves the clock on by d, firing every timer due on the way, in order.
func (c *manualClock) advance(d time.Duration) {
	c.mu.Lock()
	end := c.t.Add(d)
	c.mu.Unlock()
	for {
		c.mu.Lock()
		var next *manualTimer
		live := c.timers[:0]
		for _, t := range c.timers {
			if t.stopped {
				continue
			}
			live = append(live, t)
			if !t.at.After(end) && (next == nil || t.at.Before(next.at) || (t.at.Equal(next.at) && t.id < next.id)) {
				next = t
			}
		}
		c.timers = live
		if next == nil {
			c.t = end
			c.mu.Unlock()
			return
		}
		next.stopped = true
		if next.at.After(c.t) {
			c.t = next.at
		}
		c.mu.Unlock()
		next.f()
	}
}

type sentPublish struct {
	no    uint64
	msgID string
}

// recorder is a batchPublisher that records publishes; err, when set, fails them as they are made.
type recorder struct {
	mu   sync.Mutex
	sent []sentPublish
	err  error
}

func (r *recorder) send(subject string, data []byte, msgID string, no uint64) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.err != nil {
		return r.err
	}
	r.sent = append(r.sent, sentPublish{no, msgID})
	return nil
}

// take returns the publishes made since the last take.
func (r *recorder) take() []sentPublish {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := r.sent
	r.sent = nil
	return s
}

func ids(s []sentPublish) []string {
	out := make([]string, len(s))
	for i, x := range s {
		out[i] = x.msgID
	}
	return out
}

func sameIDs(t *testing.T, what string, got []sentPublish, want ...string) {
	t.Helper()
	if fmt.Sprint(ids(got)) != fmt.Sprint(want) {
		t.Fatalf("%s: published %v, want %v", what, ids(got), want)
	}
}

const testProbe = 250 * time.Millisecond

func testOutbox(window, maxReports int, confirm time.Duration) (*outbox, *recorder, *manualClock) {
	clk := newManualClock()
	r := &recorder{}
	o := newOutbox(outboxConfig{sender: "a1", instance: "i1", window: window, maxReports: maxReports, probe: testProbe, fastRetry: 20 * time.Second,
		backoff: []time.Duration{500 * time.Millisecond, time.Second}, confirmDelay: confirm, ackTimeout: 5 * time.Second, clock: clk.clock(), random: func() float64 { return 0.5 }})
	o.pub = r
	return o, r, clk
}

func addBatches(o *outbox, n int) {
	for i := 0; i < n; i++ {
		o.add("lars.report.0.1.1", []byte{0x80}, 10)
	}
}

func TestOutboxAckOfALaterPublishResendsEveryEarlierUnanswered(t *testing.T) {
	o, r, _ := testOutbox(8, 1000, 0)
	addBatches(o, 5)
	first := r.take()
	sameIDs(t, "the window", first, "a1/i1/1", "a1/i1/2", "a1/i1/3", "a1/i1/4", "a1/i1/5")
	// the stream answers in order: an ack for the 4th means the first three were lost on the way
	o.answered(first[3].no, nil)
	again := r.take()
	sameIDs(t, "after the ack of the 4th", again, "a1/i1/1", "a1/i1/2", "a1/i1/3")
	if st := o.stats(); st.ackedBatches != 1 || st.retried != 3 || st.pendingBatches != 4 {
		t.Fatalf("after the ack of the 4th: %+v", st)
	}
	// a late answer to a publish found lost changes nothing
	o.answered(first[0].no, errors.New("late"))
	if r.take() != nil {
		t.Fatal("a late answer made a publish")
	}
	o.answered(first[4].no, nil)
	for _, p := range again {
		o.answered(p.no, nil)
	}
	st := o.stats()
	if st.ackedBatches != 5 || st.ackedReports != 50 || st.pendingReports != 0 || st.drops != 0 || st.retried != 3 {
		t.Fatalf("at the end: %+v", st)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if err := o.settled(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestOutboxStallProbesTheOldestThenBacksOff(t *testing.T) {
	o, r, clk := testOutbox(8, 1000, 0)
	o.c.fastRetry = time.Second
	addBatches(o, 3)
	r.take()
	clk.advance(testProbe - time.Millisecond)
	if r.take() != nil {
		t.Fatal("published again before the retry interval")
	}
	// no ack for the retry interval: a stall, the oldest published again, every interval
	clk.advance(time.Millisecond)
	sameIDs(t, "the stall's first probe", r.take(), "a1/i1/1")
	clk.advance(testProbe)
	sameIDs(t, "the second probe", r.take(), "a1/i1/1")
	// new batches go out during a stall all the same; old ones wait for the probe
	addBatches(o, 1)
	sameIDs(t, "a fresh batch during the stall", r.take(), "a1/i1/4")
	// a second after the last ack the probes back off: 500ms, then 1s (jitter n/2 + 0.5·n = n)
	clk.advance(time.Second - 2*testProbe)
	sameIDs(t, "the last fast probes", r.take(), "a1/i1/1", "a1/i1/1")
	clk.advance(500*time.Millisecond - time.Millisecond)
	if r.take() != nil {
		t.Fatal("a probe before the first backoff")
	}
	clk.advance(time.Millisecond)
	sameIDs(t, "after the first backoff", r.take(), "a1/i1/1")
	clk.advance(time.Second - time.Millisecond)
	if r.take() != nil {
		t.Fatal("a probe before the second backoff")
	}
	clk.advance(time.Millisecond)
	probe := r.take()
	sameIDs(t, "after the second backoff", probe, "a1/i1/1")
	// the probe's ack ends the stall and brings back everything sent before it and unanswered
	o.answered(probe[0].no, nil)
	sameIDs(t, "after the probe's ack", r.take(), "a1/i1/2", "a1/i1/3", "a1/i1/4")
	if st := o.stats(); st.ackedBatches != 1 || st.pendingBatches != 3 {
		t.Fatalf("%+v", st)
	}
}

func TestOutboxFailedPublishStallsAndIsRetried(t *testing.T) {
	o, r, clk := testOutbox(8, 1000, 0)
	r.err = nats.ErrNoResponders
	addBatches(o, 2)
	if st := o.stats(); st.pendingReports != 20 || st.ackedBatches != 0 {
		t.Fatalf("%+v", st)
	}
	r.err = nil
	clk.advance(testProbe)
	p := r.take()
	sameIDs(t, "the probe after failed publishes", p, "a1/i1/1")
	o.answered(p[0].no, nil)
	p = r.take()
	sameIDs(t, "after the probe's ack", p, "a1/i1/2")
	o.answered(p[0].no, nil)
	if st := o.stats(); st.ackedBatches != 2 || st.pendingReports != 0 || st.retried != 2 {
		t.Fatalf("%+v", st)
	}
}

func TestOutboxReconnectProbesAtOnce(t *testing.T) {
	o, r, _ := testOutbox(8, 1000, 0)
	addBatches(o, 2)
	r.take()
	o.kick()
	sameIDs(t, "on the reconnect", r.take(), "a1/i1/1")
}

func TestOutboxAckTimeoutFreesTheWindow(t *testing.T) {
	o, r, clk := testOutbox(1, 1000, 0)
	o.c.probe = time.Hour
	o.c.ackTimeout = time.Second
	addBatches(o, 2)
	sameIDs(t, "a window of one", r.take(), "a1/i1/1")
	clk.advance(time.Second)
	// the first timed out: back in the queue, a stall; the batch never sent goes out
	sameIDs(t, "after the ack timeout", r.take(), "a1/i1/2")
	if st := o.stats(); st.pendingBatches != 2 {
		t.Fatalf("%+v", st)
	}
}

func TestOutboxConfirmsTheBatchesAcknowledgedAroundAStall(t *testing.T) {
	const confirm = 5 * time.Second
	o, r, clk := testOutbox(8, 1000, confirm)
	addBatches(o, 2)
	p := r.take()
	o.answered(p[0].no, nil)
	// the second is not answered: a stall, its probe answered
	clk.advance(testProbe)
	probe := r.take()
	sameIDs(t, "the probe", probe, "a1/i1/2")
	o.answered(probe[0].no, nil)
	if st := o.stats(); st.ackedBatches != 2 || st.pendingBatches != 0 {
		t.Fatalf("%+v", st)
	}
	clk.advance(confirm - time.Millisecond)
	if r.take() != nil {
		t.Fatal("confirmed before the delay")
	}
	clk.advance(time.Millisecond)
	// both acknowledged around the stall (the first just before it began): published once more, same ids
	again := r.take()
	sameIDs(t, "the confirmation", again, "a1/i1/1", "a1/i1/2")
	if st := o.stats(); st.pendingReports != 20 || st.ackedBatches != 2 {
		t.Fatalf("while confirming: %+v", st)
	}
	for _, x := range again {
		o.answered(x.no, nil)
	}
	st := o.stats()
	if st.confirmedBatches != 2 || st.ackedBatches != 2 || st.ackedReports != 20 || st.pendingReports != 0 {
		t.Fatalf("after the confirmation: %+v", st)
	}
	// acks long after the stall are not confirmed again
	addBatches(o, 1)
	o.answered(r.take()[0].no, nil)
	clk.advance(2 * confirm)
	if x := r.take(); x != nil {
		t.Fatalf("confirmed without a stall: %v", ids(x))
	}
}

func TestOutboxWithoutConfirmDelayConfirmsNothing(t *testing.T) {
	o, r, clk := testOutbox(8, 1000, 0)
	addBatches(o, 1)
	clk.advance(testProbe)
	probe := r.take()
	o.answered(probe[len(probe)-1].no, nil)
	clk.advance(time.Minute)
	if x := r.take(); x != nil {
		t.Fatalf("published %v", ids(x))
	}
}

func TestOutboxBoundDropsTheOldestNotOnTheWireAndCountsThem(t *testing.T) {
	o, r, _ := testOutbox(1, 50, 0)
	addBatches(o, 10)
	sameIDs(t, "a window of one", r.take(), "a1/i1/1")
	st := o.stats()
	if st.drops != 50 || st.pendingReports != 50 {
		t.Fatalf("bound of 50 with 100 made: %+v", st)
	}
	// the batch on the wire is kept; the oldest queued ones went
	var seqs []int
	for k := range o.unsettled {
		seqs = append(seqs, int(k))
	}
	sort.Ints(seqs)
	if fmt.Sprint(seqs) != "[1 7 8 9 10]" {
		t.Fatalf("kept %v", seqs)
	}
	if n := o.abandon(); n != 50 {
		t.Fatalf("abandon dropped %d, want 50", n)
	}
	if o.stats().drops != 100 {
		t.Fatalf("drops %d after abandon", o.stats().drops)
	}
}

func TestOutboxClosedConnectionFailsTheFlush(t *testing.T) {
	o, r, _ := testOutbox(8, 1000, 0)
	addBatches(o, 1)
	o.answered(r.take()[0].no, nats.ErrConnectionClosed)
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if err := o.settled(ctx); !errors.Is(err, ErrClosed) {
		t.Fatalf("settled: %v, want ErrClosed", err)
	}
	if n := o.abandon(); n != 10 {
		t.Fatalf("abandon dropped %d", n)
	}
}

func TestOutboxSettledTimesOutNamingThePending(t *testing.T) {
	o, _, _ := testOutbox(8, 1000, 0)
	addBatches(o, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	err := o.settled(ctx)
	if !errors.Is(err, context.DeadlineExceeded) || err.Error() != "lars: report batches not acknowledged in time (10 reports pending): context deadline exceeded" {
		t.Fatalf("settled: %v", err)
	}
}

func TestPubAckAnswers(t *testing.T) {
	cases := []struct {
		m    *nats.Msg
		want publishFailure
		ok   bool
	}{
		{&nats.Msg{Data: []byte(`{"stream":"R","seq":4}`)}, "", true},
		{&nats.Msg{Data: []byte(`{"stream":"R","seq":4,"duplicate":true}`)}, "", true},
		{&nats.Msg{Header: nats.Header{"Status": []string{"503"}}}, publishNoStream, false},
		{&nats.Msg{Data: []byte(`{"error":{"code":503,"err_code":10077,"description":"maximum messages exceeded"}}`)}, publishRefused, false},
		{&nats.Msg{Data: []byte(`not json`)}, publishOther, false},
		{&nats.Msg{Data: []byte(`{"stream":"","seq":4}`)}, publishOther, false},
		{&nats.Msg{Data: []byte(`{"stream":"R","error":{"code":400,"err_code":10060,"description":"expected stream does not match"}}`)}, publishRefused, false},
	}
	for i, c := range cases {
		err := pubAckError(c.m)
		if (err == nil) != c.ok || (!c.ok && classifyPublishError(err) != c.want) {
			t.Fatalf("case %d: %v (%s)", i, err, classifyPublishError(err))
		}
	}
}

func TestFlushWithoutDeadlineWaitsFlushTimeout(t *testing.T) {
	o, err := resolve(Options{FlushTimeout: 30 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	n, _ := newNames(o.Prefix)
	a := &Agent{o: o, id: o.AgentID, names: n, done: make(chan struct{})}
	a.outbox = newOutbox(outboxConfig{sender: a.id, instance: "i1", window: 8, maxReports: 1000, probe: time.Hour, ackTimeout: time.Hour, clock: newManualClock().clock()})
	a.outbox.pub = &recorder{}
	a.batcher = newBatcher(n, 64, a.id, "", 1000, time.Hour, a.toOutbox)
	if err := a.Report(Host{IP: "10.0.0.1", Port: 80, Modid: 1, Cmdid: 1}, 0, time.Millisecond); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	err = a.Flush(context.Background())
	if !errors.Is(err, context.DeadlineExceeded) || time.Since(start) < 30*time.Millisecond {
		t.Fatalf("Flush: %v after %v", err, time.Since(start))
	}
	if a.outbox.stats().pendingReports != 1 {
		t.Fatalf("%+v", a.outbox.stats())
	}
}

func TestOptionsOfDelivery(t *testing.T) {
	o, err := resolve(Options{})
	if err != nil || o.ReportDelivery != ReportDeliveryAcked || o.FlushTimeout != 30*time.Second || o.ConfirmDelay != 5*time.Second || len(o.RetryBackoff) != 4 {
		t.Fatalf("defaults: %v %+v", err, o)
	}
	if o, _ := resolve(Options{ConfirmDelay: -1}); o.ConfirmDelay != 0 {
		t.Fatalf("a negative ConfirmDelay is never: %v", o.ConfirmDelay)
	}
	if _, err := resolve(Options{ReportDelivery: "fast"}); err == nil {
		t.Fatal("an unknown ReportDelivery accepted")
	}
	if _, err := resolve(Options{RetryBackoff: []time.Duration{time.Second, 0}}); err == nil {
		t.Fatal("a zero pause in RetryBackoff accepted")
	}
}

func TestAckedBatchesForgetTheExpiredThenTheOldestBeyondTheBound(t *testing.T) {
	var a ackedBatches
	t0 := time.Unix(0, 0)
	at := func(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }
	for i := 0; i < 3000; i++ {
		a.keep(&pendingBatch{seq: uint64(i), reports: 10}, at(i), at(i-100), 1_000_000)
	}
	// acknowledged within the last 100 s: 101 batches
	if n := len(a.list) - a.head; n != 101 || a.kept != 1010 {
		t.Fatalf("%d kept, %d reports", n, a.kept)
	}
	a.keep(&pendingBatch{seq: 3000, reports: 10}, at(3000), at(0), 50)
	got := a.takeSince(at(0))
	if len(got) != 5 || got[0].seq != 2996 || got[4].seq != 3000 || a.kept != 0 {
		t.Fatalf("bound of 50 reports: %d kept from %d", len(got), got[0].seq)
	}
}
