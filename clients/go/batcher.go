package lars

import (
	"sync"
	"time"
)

// batcher keeps a buffer per route (src/agent/report-batcher.ts): a route's
// reports leave as one ReportBatch when it holds maxReports, when its first
// report is maxDelay old, or when its hosts or offsets reach the contract's
// limits. The latest utilization per host goes with the batch.
type batcher struct {
	mu         sync.Mutex
	names      names
	partitions int
	sender     string
	zone       string
	maxReports int
	maxDelay   time.Duration
	sink       func(subject string, data []byte, reports int)
	buffers    map[uint64]*routeBuffer
	// the buffers by modid in order of first use, each in order of first use: the order batches are flushed in
	modOrder []uint32
	byMod    map[uint32][]*routeBuffer
	timer    *time.Timer
	buffered int
	batches  uint64
	stopped  bool
}

type routeBuffer struct {
	subject   string
	batch     ReportBatch
	hostIndex map[string]int
	// by the agent's host object (a pick result's): the path without building a key
	objIndex map[*pickHost]int
}

func newBatcher(n names, partitions int, sender, zone string, maxReports int, maxDelay time.Duration, sink func(string, []byte, int)) *batcher {
	return &batcher{names: n, partitions: partitions, sender: sender, zone: zone, maxReports: maxReports, maxDelay: maxDelay, sink: sink, buffers: map[uint64]*routeBuffer{}, byMod: map[uint32][]*routeBuffer{}}
}

// add buffers one checked report made at now (ms) (latency capped, utilization within 0..1 or negative for none);
// hp is the agent's object of the host when the caller has it; attempt > 0
// marks a retry or a hedge (attempt number and kind) of a logical call.
func (b *batcher) add(now float64, modid, cmdid uint32, ip string, port int, hp *pickHost, retcode int32, latencyMs float64, utilization float64, attempt int, kind AttemptKind) {
	b.mu.Lock()
	k := uint64(modid)<<32 | uint64(cmdid)
	rb := b.buffers[k]
	if rb == nil {
		rb = &routeBuffer{subject: b.names.report(Partition(modid, cmdid, b.partitions), modid, cmdid), hostIndex: map[string]int{}, objIndex: map[*pickHost]int{}}
		rb.batch = ReportBatch{Sender: b.sender, Modid: modid, Cmdid: cmdid, Zone: b.zone}
		b.buffers[k] = rb
		if _, ok := b.byMod[modid]; !ok {
			b.modOrder = append(b.modOrder, modid)
		}
		b.byMod[modid] = append(b.byMod[modid], rb)
	}
	if len(rb.batch.Reports) == 0 {
		rb.batch.Ts = now
	}
	hi, ok := 0, false
	if hp != nil {
		hi, ok = rb.objIndex[hp]
	}
	if !ok {
		hk := hostKey(ip, port)
		hi, ok = rb.hostIndex[hk]
		if !ok {
			hi = len(rb.batch.Hosts)
			rb.batch.Hosts = append(rb.batch.Hosts, HostAddr{ip, port})
			rb.hostIndex[hk] = hi
		}
		if hp != nil {
			rb.objIndex[hp] = hi
		}
	}
	off := now - rb.batch.Ts
	if off < 0 {
		off = 0
	}
	offMs := maxOffset
	if off < maxOffset {
		offMs = int(off)
	}
	if attempt > 0 {
		rb.batch.Attempts = append(rb.batch.Attempts, AttemptMark{len(rb.batch.Reports), attempt, kind})
	}
	rb.batch.Reports = append(rb.batch.Reports, Report{hi, retcode, latencyMs, offMs})
	if utilization >= 0 {
		if rb.batch.Utilization == nil {
			rb.batch.Utilization = map[int]float64{}
		}
		rb.batch.Utilization[hi] = utilization
	}
	b.buffered++
	var out []emitted
	if len(rb.batch.Reports) >= b.maxReports || len(rb.batch.Hosts) >= maxHosts || off >= maxOffset {
		out = append(out, b.emitLocked(rb))
	} else if b.timer == nil && !b.stopped {
		b.timer = time.AfterFunc(b.maxDelay, b.flush)
	}
	b.mu.Unlock()
	b.deliver(out)
}

type emitted struct {
	subject string
	data    []byte
	reports int
}

func (b *batcher) emitLocked(rb *routeBuffer) emitted {
	n := len(rb.batch.Reports)
	data := rb.batch.Encode(make([]byte, 0, 64+n*16))
	rb.batch.Hosts = rb.batch.Hosts[:0]
	rb.batch.Reports = rb.batch.Reports[:0]
	rb.batch.Utilization = nil
	rb.batch.Attempts = rb.batch.Attempts[:0]
	for k := range rb.hostIndex {
		delete(rb.hostIndex, k)
	}
	for k := range rb.objIndex {
		delete(rb.objIndex, k)
	}
	b.buffered -= n
	b.batches++
	return emitted{rb.subject, data, n}
}

func (b *batcher) deliver(out []emitted) {
	for _, e := range out {
		b.sink(e.subject, e.data, e.reports)
	}
}

// flush hands every buffered report to the sink now.
func (b *batcher) flush() {
	b.mu.Lock()
	if b.timer != nil {
		b.timer.Stop()
		b.timer = nil
	}
	var out []emitted
	for _, m := range b.modOrder {
		for _, rb := range b.byMod[m] {
			if len(rb.batch.Reports) > 0 {
				out = append(out, b.emitLocked(rb))
			}
		}
	}
	b.mu.Unlock()
	b.deliver(out)
}

func (b *batcher) pending() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buffered
}

func (b *batcher) stop() {
	b.mu.Lock()
	b.stopped = true
	if b.timer != nil {
		b.timer.Stop()
		b.timer = nil
	}
	b.mu.Unlock()
}

func (b *batcher) batchCount() uint64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.batches
}
