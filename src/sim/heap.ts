/**
 * The simulator's event queue: a binary min-heap on (time, sequence). The
 * sequence number breaks ties in insertion order, so two events at the same
 * virtual instant always run in the order they were scheduled and a run is
 * reproducible bit for bit.
 */

export interface Scheduled<E> {
  readonly t: number;
  readonly seq: number;
  readonly ev: E;
}

export class EventQueue<E> {
  private items: Array<Scheduled<E>> = [];
  private nextSeq = 0;

  get size(): number {
    return this.items.length;
  }

  push(t: number, ev: E): void {
    const a = this.items;
    const item: Scheduled<E> = { t, seq: this.nextSeq++, ev };
    let i = a.length;
    a.push(item);
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!before(item, a[p]!)) break;
      a[i] = a[p]!;
      i = p;
    }
    a[i] = item;
  }

  /** The earliest event, removed; undefined when empty. */
  pop(): Scheduled<E> | undefined {
    const a = this.items;
    const top = a[0];
    if (top === undefined) return undefined;
    const last = a.pop()!;
    if (a.length > 0) {
      let i = 0;
      const n = a.length;
      for (;;) {
        const l = 2 * i + 1;
        if (l >= n) break;
        const r = l + 1;
        const c = r < n && before(a[r]!, a[l]!) ? r : l;
        if (!before(a[c]!, last)) break;
        a[i] = a[c]!;
        i = c;
      }
      a[i] = last;
    }
    return top;
  }

  peekTime(): number | undefined {
    return this.items[0]?.t;
  }
}

function before<E>(a: Scheduled<E>, b: Scheduled<E>): boolean {
  return a.t < b.t || (a.t === b.t && a.seq < b.seq);
}
