package lars

import "time"

// The outbox's stalls and timers (outbox.go): the stall check while
// publishes are out, the probes of the oldest batch and their backoff, the
// ack timeout of a publish nobody answers, and the confirmation of the
// batches acknowledged around a stall.

func (o *outbox) beginStall(now time.Time) {
	o.stalled = true
	// acks given a little before the stall was seen may be lost with it too
	from := now.Add(-2 * o.c.probe)
	if o.stallFrom.IsZero() || from.Before(o.stallFrom) {
		o.stallFrom = from
	}
	if o.confirmTimer != nil {
		o.confirmTimer.Stop()
		o.confirmTimer = nil
	}
}

// keepAcked keeps an acknowledged batch for a while, for a confirmation after a stall.
func (o *outbox) keepAcked(e *pendingBatch, now time.Time) {
	if o.c.confirmDelay <= 0 {
		return
	}
	// what no confirmation can ask for any more: acknowledged before the stall under way, or long ago
	keepFrom := now.Add(-o.c.confirmDelay - 4*o.c.probe)
	if !o.stallFrom.IsZero() && o.stallFrom.Before(keepFrom) {
		keepFrom = o.stallFrom
	}
	o.acked.keep(e, now, keepFrom, o.c.maxReports)
}

// scheduleConfirm: after a stall ended, the confirmation comes confirmDelay after the first ack.
func (o *outbox) scheduleConfirm() {
	if o.c.confirmDelay <= 0 || o.stopped || o.stalled || o.confirmTimer != nil {
		return
	}
	o.confirmTimer = o.c.clock.afterFunc(o.c.confirmDelay, func() {
		o.mu.Lock()
		defer o.unlock()
		o.confirmTimer = nil
		o.confirm()
	})
}

// confirm publishes once more every batch acknowledged since the stall began.
func (o *outbox) confirm() {
	from := o.stallFrom
	if o.stopped || from.IsZero() || o.stalled {
		return
	}
	o.stallFrom = time.Time{}
	again := o.acked.takeSince(from)
	if len(again) == 0 {
		return
	}
	for _, old := range again {
		if _, ok := o.unsettled[old.seq]; ok {
			continue
		}
		e := &pendingBatch{seq: old.seq, msgID: old.msgID, subject: old.subject, data: old.data, reports: old.reports, confirming: true}
		o.unsettled[e.seq] = e
		o.order.push(e)
		o.st.pendingReports += e.reports
		o.queue.requeue(e)
	}
	o.order.resort()
	o.c.log.Info("report batches acknowledged around a stall published once more to confirm them", "batches", len(again))
	o.pump()
}

// probeNow publishes the oldest batch again (or for the first time) and schedules the next probe.
func (o *outbox) probeNow(now time.Time) {
	e := o.order.oldest()
	if e == nil {
		return
	}
	o.queue.remove(e)
	o.send(e)
	o.lastProgressAt = now
	o.nextProbeAt = now.Add(o.probeDelay(now))
}

func (o *outbox) probeDelay(now time.Time) time.Duration {
	if now.Sub(o.lastGoodAt) < o.c.fastRetry {
		return o.c.probe
	}
	i := o.slowProbes
	o.slowProbes++
	if i >= len(o.c.backoff) {
		i = len(o.c.backoff) - 1
	}
	// the jitter of the TypeScript agent's backoff: n/2 + random·n
	n := o.c.backoff[i]
	return n/2 + time.Duration(o.c.random()*float64(n))
}

// arm sets the timer for the next stall check, probe or ack deadline, unless one is set for that time or sooner.
func (o *outbox) arm() {
	if o.stopped || len(o.unsettled) == 0 {
		o.disarm()
		return
	}
	var at time.Time
	switch {
	case o.stalled:
		at = o.nextProbeAt
	case o.outstanding > 0:
		at = o.lastProgressAt.Add(o.c.probe)
	}
	if w := o.oldestOpen(); w != nil {
		if d := w.at.Add(o.c.ackTimeout); at.IsZero() || d.Before(at) {
			at = d
		}
	}
	if at.IsZero() {
		o.disarm()
		return
	}
	if o.wake != nil && !o.wakeAt.After(at) {
		return
	}
	o.disarm()
	o.wakeAt = at
	d := at.Sub(o.c.clock.now())
	if d < 0 {
		d = 0
	}
	o.wake = o.c.clock.afterFunc(d, o.onTimer)
}

// oldestOpen is the oldest publish not answered yet (answered ones at the head are dropped).
func (o *outbox) oldestOpen() *wireEntry {
	i := 0
	for i < len(o.wire) {
		if _, open := o.sends[o.wire[i].no]; open {
			break
		}
		i++
	}
	o.dropWire(i)
	if len(o.wire) == 0 {
		return nil
	}
	return &o.wire[0]
}

func (o *outbox) disarm() {
	if o.wake != nil {
		o.wake.Stop()
		o.wake = nil
	}
}

func (o *outbox) onTimer() {
	o.mu.Lock()
	defer o.unlock()
	o.wake = nil
	if o.stopped {
		return
	}
	now := o.c.clock.now()
	// publishes nobody answered within the ack timeout fail
	for w := o.oldestOpen(); w != nil && !now.Before(w.at.Add(o.c.ackTimeout)); w = o.oldestOpen() {
		no := w.no
		o.dropWire(1)
		o.fail(no, errAckTimeout)
		if o.stopped {
			return
		}
	}
	if o.stalled {
		if !now.Before(o.nextProbeAt) {
			o.probeNow(now)
		}
	} else if o.outstanding > 0 && now.Sub(o.lastProgressAt) >= o.c.probe {
		o.rl.emit(now, "warn", "stall", "report batches not acknowledged in time (stream leader lost, or server away); probing with the oldest batch", "pendingReports", o.st.pendingReports, "pendingBatches", len(o.unsettled), "waited", now.Sub(o.lastProgressAt).String())
		o.beginStall(now)
		o.probeNow(now)
	}
	o.arm()
}
