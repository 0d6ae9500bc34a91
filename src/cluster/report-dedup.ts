/**
 * Repeated report batches. An agent publishes each batch to JetStream with
 * `Nats-Msg-Id: <sender>/<instance>/<seq>` (schemas/msg-id.ts) and
 * retries it when no acknowledgement came; the stream stores a retry once,
 * but a route node's core subscription sees every publish. This memory lets
 * the node skip a batch it has already ingested.
 *
 * Per sender instance: the highest seq seen and a ring bitmap of the last
 * `window` seqs below it. A seq in the window whose bit is set is a repeat.
 * A seq older than the window cannot be judged and is taken (a retry that
 * far behind is rare: the outbox keeps few batches in flight). Senders not
 * heard from for `ttlMs` (default the stream's 2-minute duplicate window)
 * are forgotten, and at most `maxSenders` are kept (least recently heard
 * first out). Cost: one map lookup and a few bit operations per batch.
 */
import { parseReportMsgId } from '../../schemas/msg-id.ts';

export const DEDUP_DEFAULTS = {
  /** Seqs remembered below the highest one, per sender instance (a multiple of 32). */
  window: 1024,
  /** The JetStream duplicate window of the REPORTS stream. */
  ttlMs: 120_000,
  maxSenders: 65_536,
} as const;

export const DedupVerdict = {
  /** First time seen: ingest it. */
  fresh: 'fresh',
  /** Seen already: skip it. */
  duplicate: 'duplicate',
  /** Older than the window, or no usable message id: ingest it (cannot tell). */
  unknown: 'unknown',
} as const;
export type DedupVerdict = (typeof DedupVerdict)[keyof typeof DedupVerdict];

interface SenderWindow {
  high: number;
  bits: Uint32Array;
  lastSeen: number;
}

export interface ReportDedupOptions {
  window?: number;
  ttlMs?: number;
  maxSenders?: number;
  clock?: () => number;
}

export class ReportDedup {
  private readonly window: number;
  private readonly ttlMs: number;
  private readonly maxSenders: number;
  private readonly clock: () => number;
  /** By `<sender>/<instance>`, least recently heard first. */
  private readonly senders = new Map<string, SenderWindow>();

  constructor(o: ReportDedupOptions = {}) {
    this.window = Math.max(32, Math.ceil((o.window ?? DEDUP_DEFAULTS.window) / 32) * 32);
    this.ttlMs = o.ttlMs ?? DEDUP_DEFAULTS.ttlMs;
    this.maxSenders = o.maxSenders ?? DEDUP_DEFAULTS.maxSenders;
    this.clock = o.clock ?? Date.now;
  }

  /** Sender instances remembered now. */
  get size(): number {
    return this.senders.size;
  }

  /** Judges a batch by its `Nats-Msg-Id` header value (undefined: no header) and remembers it. */
  seeMsgId(msgId: string | undefined): DedupVerdict {
    if (!msgId) return DedupVerdict.unknown;
    const id = parseReportMsgId(msgId);
    if (!id) return DedupVerdict.unknown;
    return this.see(`${id.sender}/${id.instance}`, id.seq);
  }

  /** Judges seq `seq` of sender instance `key` and remembers it. */
  see(key: string, seq: number): DedupVerdict {
    const now = this.clock();
    let w = this.senders.get(key);
    if (w && now - w.lastSeen > this.ttlMs) {
      this.senders.delete(key);
      w = undefined;
    }
    if (!w) {
      w = { high: seq, bits: new Uint32Array(this.window / 32), lastSeen: now };
      this.setBit(w, seq);
      this.senders.set(key, w);
      this.evict(now);
      return DedupVerdict.fresh;
    }
    // Most recently heard last in the map.
    this.senders.delete(key);
    this.senders.set(key, w);
    w.lastSeen = now;
    if (seq > w.high) {
      const gap = seq - w.high;
      if (gap >= this.window) w.bits.fill(0);
      else for (let s = w.high + 1; s < seq; s++) this.clearBit(w, s);
      w.high = seq;
      this.setBit(w, seq);
      return DedupVerdict.fresh;
    }
    if (w.high - seq >= this.window) return DedupVerdict.unknown;
    const i = seq % this.window;
    const mask = 1 << (i & 31);
    const word = w.bits[i >>> 5]!;
    if (word & mask) return DedupVerdict.duplicate;
    w.bits[i >>> 5] = word | mask;
    return DedupVerdict.fresh;
  }

  private setBit(w: SenderWindow, seq: number): void {
    const i = seq % this.window;
    w.bits[i >>> 5]! |= 1 << (i & 31);
  }

  private clearBit(w: SenderWindow, seq: number): void {
    const i = seq % this.window;
    w.bits[i >>> 5]! &= ~(1 << (i & 31));
  }

  /** Drops expired senders from the least recently heard end, and any over the bound. */
  private evict(now: number): void {
    for (const [k, w] of this.senders) {
      if (this.senders.size <= this.maxSenders && now - w.lastSeen <= this.ttlMs) break;
      this.senders.delete(k);
    }
  }
}
