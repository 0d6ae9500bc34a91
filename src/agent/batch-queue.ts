/**
 * The outbox's batches (./outbox.ts): each one's state on its way to an
 * acknowledgement, the queue of those waiting to be sent, kept in sequence
 * order so that the oldest always goes first, and those acknowledged lately,
 * kept for a confirmation after a stall.
 */

/** One report batch in the outbox. */
export class PendingBatch {
  readonly seq: number;
  readonly msgId: string;
  readonly subject: string;
  readonly data: Uint8Array;
  readonly reports: number;
  attempts = 0;
  /** Number of the latest publish of this batch (publishes are numbered in the order they are sent). */
  sendNo = 0;
  /** Its latest publish is out and unanswered: it counts against the window. */
  inFlight = false;
  /** Waiting in the queue to be sent. */
  queued = false;
  /** Acknowledged or dropped: whatever still answers for it is ignored. */
  settled = false;
  /** Acknowledged before; published again to confirm it (its ack is not counted again). */
  confirming = false;
  /** When it was acknowledged (outbox clock). */
  ackedAt = 0;
  constructor(seq: number, msgId: string, subject: string, data: Uint8Array, reports: number) {
    this.seq = seq;
    this.msgId = msgId;
    this.subject = subject;
    this.data = data;
    this.reports = reports;
  }
}

/**
 * Batches waiting to be sent, in seq order. A batch that leaves the queue
 * otherwise than from its head (acknowledged while queued) only loses its
 * `queued` flag and is passed over when reached.
 */
export class BatchQueue {
  private items: PendingBatch[] = [];
  private head = 0;
  /** Batches queued. */
  size = 0;

  /** Queues a new batch (the newest: its seq is the highest). */
  push(e: PendingBatch): void {
    e.queued = true;
    this.items.push(e);
    this.size++;
  }

  /** The oldest batch waiting (settled ones at the head are passed over). */
  peek(): PendingBatch | undefined {
    while (this.head < this.items.length && !this.items[this.head]!.queued) this.head++;
    if (this.head > 1024 && this.head * 2 > this.items.length) {
      this.items = this.items.slice(this.head);
      this.head = 0;
    }
    return this.items[this.head];
  }

  /** Takes the oldest batch waiting out of the queue. */
  shift(): PendingBatch | undefined {
    const e = this.peek();
    if (e === undefined) return undefined;
    this.head++;
    e.queued = false;
    this.size--;
    return e;
  }

  /** Takes `e` out wherever it is (it is passed over when reached). */
  remove(e: PendingBatch): void {
    if (!e.queued) return;
    e.queued = false;
    this.size--;
  }

  /** Puts a failed batch back in seq order (failed batches are the oldest: the scan is short). */
  requeue(e: PendingBatch): void {
    let i = this.head;
    while (i < this.items.length && this.items[i]!.seq < e.seq) i++;
    if (i === this.head && this.head > 0) this.items[--this.head] = e;
    else this.items.splice(i, 0, e);
    e.queued = true;
    this.size++;
  }

  /**
   * Hands `send` the batches never sent yet, oldest first, while `fits` takes
   * them, and takes them out of the queue (a batch that fails is put back in
   * its place by `requeue`). Those batches are the end of the queue (it is in
   * seq order).
   */
  takeFresh(fits: (e: PendingBatch) => boolean, send: (e: PendingBatch) => void): void {
    let from = this.items.length;
    while (from > this.head && this.items[from - 1]!.queued && this.items[from - 1]!.attempts === 0) from--;
    let to = from;
    for (; to < this.items.length; to++) {
      const e = this.items[to]!;
      if (!fits(e)) break;
      e.queued = false;
      this.size--;
      send(e);
    }
    if (to > from) this.items.splice(from, to - from);
  }

  /** Forgets every batch. */
  clear(): void {
    this.items = [];
    this.head = 0;
    this.size = 0;
  }
}

/**
 * Batches acknowledged lately (oldest first), kept for a confirmation after a
 * stall: a queue with the sum of its reports, so that keeping one costs the
 * same however many are kept.
 */
export class AckedBatches {
  private list: PendingBatch[] = [];
  private head = 0;
  private kept = 0;

  /**
   * Keeps `e`, acknowledged at `now`, and forgets those acknowledged before
   * `keepFrom`, then the oldest beyond `maxReports` reports (bounded like the
   * pending reports).
   */
  keep(e: PendingBatch, now: number, keepFrom: number, maxReports: number): void {
    e.ackedAt = now;
    this.list.push(e);
    this.kept += e.reports;
    while (this.head < this.list.length && this.list[this.head]!.ackedAt < keepFrom) this.drop();
    while (this.kept > maxReports && this.head < this.list.length) this.drop();
    if (this.head > 1024 && this.head * 2 > this.list.length) {
      this.list = this.list.slice(this.head);
      this.head = 0;
    }
  }

  private drop(): void {
    this.kept -= this.list[this.head]!.reports;
    this.head++;
  }

  /** The batches acknowledged at `from` or later; forgets them all. */
  takeSince(from: number): PendingBatch[] {
    const again: PendingBatch[] = [];
    for (let i = this.head; i < this.list.length; i++) if (this.list[i]!.ackedAt >= from) again.push(this.list[i]!);
    this.clear();
    return again;
  }

  clear(): void {
    this.list = [];
    this.head = 0;
    this.kept = 0;
  }
}
