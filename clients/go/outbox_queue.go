package lars

import (
	"sort"
	"time"
)

// The outbox's batches (src/agent/batch-queue.ts): each one's state on its
// way to an acknowledgement, the queue of those waiting to be sent, kept in
// sequence order so that the oldest always goes first, and those
// acknowledged lately, kept for a confirmation after a stall.

// pendingBatch is one report batch in the outbox.
type pendingBatch struct {
	seq     uint64
	msgID   string
	subject string
	data    []byte
	reports int
	// publishes of it so far
	attempts int
	// number of its latest publish (publishes are numbered in the order they are sent)
	sendNo uint64
	// its latest publish is out and unanswered: it counts against the window
	inFlight bool
	// waiting in the queue to be sent
	queued bool
	// acknowledged or dropped: whatever still answers for it is ignored
	settled bool
	// acknowledged before; published again to confirm it (its ack is not counted again)
	confirming bool
	// when it was acknowledged
	ackedAt time.Time
}

// batchQueue holds the batches waiting to be sent, in seq order. A batch
// that leaves it otherwise than from its head (acknowledged while queued)
// only loses its queued flag and is passed over when reached.
type batchQueue struct {
	items []*pendingBatch
	head  int
	size  int
}

// push queues a new batch (the newest: its seq is the highest).
func (q *batchQueue) push(e *pendingBatch) {
	e.queued = true
	q.items = append(q.items, e)
	q.size++
}

// peek is the oldest batch waiting (settled ones at the head are passed over).
func (q *batchQueue) peek() *pendingBatch {
	for q.head < len(q.items) && !q.items[q.head].queued {
		q.items[q.head] = nil
		q.head++
	}
	if q.head > 1024 && q.head*2 > len(q.items) {
		q.items = append([]*pendingBatch(nil), q.items[q.head:]...)
		q.head = 0
	}
	if q.head == len(q.items) {
		return nil
	}
	return q.items[q.head]
}

// shift takes the oldest batch waiting out of the queue.
func (q *batchQueue) shift() *pendingBatch {
	e := q.peek()
	if e == nil {
		return nil
	}
	q.items[q.head] = nil
	q.head++
	e.queued = false
	q.size--
	return e
}

// remove takes e out wherever it is (it is passed over when reached).
func (q *batchQueue) remove(e *pendingBatch) {
	if !e.queued {
		return
	}
	e.queued = false
	q.size--
}

// requeue puts a failed batch back in seq order (failed batches are the oldest: the scan is short).
func (q *batchQueue) requeue(e *pendingBatch) {
	if e.queued {
		return
	}
	i := q.head
	for i < len(q.items) && (q.items[i] == nil || q.items[i].seq < e.seq) {
		i++
	}
	if i == q.head && q.head > 0 {
		q.head--
		q.items[q.head] = e
	} else {
		q.items = append(q.items, nil)
		copy(q.items[i+1:], q.items[i:])
		q.items[i] = e
	}
	e.queued = true
	q.size++
}

// takeFresh hands send the batches never sent yet, oldest first, while fits
// takes them, and takes them out of the queue. Those batches are the end of
// the queue (it is in seq order).
func (q *batchQueue) takeFresh(fits func(*pendingBatch) bool, send func(*pendingBatch)) {
	from := len(q.items)
	for from > q.head && q.items[from-1] != nil && q.items[from-1].queued && q.items[from-1].attempts == 0 {
		from--
	}
	to := from
	var taken []*pendingBatch
	for ; to < len(q.items); to++ {
		e := q.items[to]
		if !fits(e) {
			break
		}
		e.queued = false
		q.size--
		taken = append(taken, e)
	}
	if to > from {
		q.items = append(q.items[:from], q.items[to:]...)
	}
	// sent after the queue is consistent: a send that fails at once puts its batch back in place
	for _, e := range taken {
		send(e)
	}
}

func (q *batchQueue) clear() {
	q.items, q.head, q.size = nil, 0, 0
}

// ackedBatches are the batches acknowledged lately (oldest first), kept for
// a confirmation after a stall: a queue with the sum of its reports, so that
// keeping one costs the same however many are kept.
type ackedBatches struct {
	list []*pendingBatch
	head int
	kept int
}

// keep keeps e, acknowledged at now, and forgets those acknowledged before
// keepFrom, then the oldest beyond maxReports reports (bounded like the
// pending reports).
func (a *ackedBatches) keep(e *pendingBatch, now, keepFrom time.Time, maxReports int) {
	e.ackedAt = now
	a.list = append(a.list, e)
	a.kept += e.reports
	for a.head < len(a.list) && a.list[a.head].ackedAt.Before(keepFrom) {
		a.drop()
	}
	for a.kept > maxReports && a.head < len(a.list) {
		a.drop()
	}
	if a.head > 1024 && a.head*2 > len(a.list) {
		a.list = append([]*pendingBatch(nil), a.list[a.head:]...)
		a.head = 0
	}
}

func (a *ackedBatches) drop() {
	a.kept -= a.list[a.head].reports
	a.list[a.head] = nil
	a.head++
}

// takeSince returns the batches acknowledged at from or later, and forgets them all.
func (a *ackedBatches) takeSince(from time.Time) []*pendingBatch {
	var again []*pendingBatch
	for _, e := range a.list[a.head:] {
		if !e.ackedAt.Before(from) {
			again = append(again, e)
		}
	}
	a.clear()
	return again
}

func (a *ackedBatches) clear() { a.list, a.head, a.kept = nil, 0, 0 }

// seqList is the unsettled batches in seq order; settled ones are passed over and dropped lazily.
type seqList struct {
	items []*pendingBatch
	head  int
}

func (l *seqList) push(e *pendingBatch) { l.items = append(l.items, e) }

// oldest is the unsettled batch of the lowest seq, or nil.
func (l *seqList) oldest() *pendingBatch {
	for l.head < len(l.items) && l.items[l.head].settled {
		l.items[l.head] = nil
		l.head++
	}
	if l.head > 1024 && l.head*2 > len(l.items) {
		l.items = append([]*pendingBatch(nil), l.items[l.head:]...)
		l.head = 0
	}
	if l.head == len(l.items) {
		return nil
	}
	return l.items[l.head]
}

// resort puts the list back in seq order after older batches were pushed (a confirmation).
func (l *seqList) resort() {
	live := l.items[:0]
	for _, e := range l.items[l.head:] {
		if !e.settled {
			live = append(live, e)
		}
	}
	sort.Slice(live, func(i, j int) bool { return live[i].seq < live[j].seq })
	l.items, l.head = live, 0
}

func (l *seqList) clear() { l.items, l.head = nil, 0 }
