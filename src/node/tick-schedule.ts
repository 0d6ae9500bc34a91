/**
 * Which routes a node ticks: those that something reached since their last
 * tick (a report batch, a registry entry, a restore), and those whose next
 * tick (`RouteActor.nextTick()`) has come. An idle route is ticked when one
 * of its times comes (a load period, a window end), not at every interval.
 *
 * The times are kept in a binary min-heap; an item rescheduled leaves its
 * old entry behind, skipped when it comes up (the heap is rebuilt when such
 * entries outnumber the live ones).
 */
export class TickSchedule<T> {
  private readonly touched = new Set<T>();
  /** Each scheduled item's current time. */
  private readonly due = new Map<T, number>();
  private heap: Array<{ at: number; item: T }> = [];

  /** `item` is ticked at the next `take`. */
  touch(item: T): void {
    this.touched.add(item);
  }

  /** `item`'s next tick is at `at` (Infinity: none), replacing the one it had. */
  set(item: T, at: number): void {
    if (at === Infinity) {
      this.due.delete(item);
      return;
    }
    this.due.set(item, at);
    this.push({ at, item });
    if (this.heap.length > 2 * this.due.size + 1024) this.rebuild();
  }

  /** Forgets `item` (dropped). */
  remove(item: T): void {
    this.touched.delete(item);
    this.due.delete(item);
  }

  /** The items to tick at `now`, each once: the touched ones and those due. They are unscheduled until `set` again. */
  take(now: number): T[] {
    const out = [...this.touched];
    this.touched.clear();
    for (const item of out) this.due.delete(item);
    const heap = this.heap;
    while (heap.length > 0 && heap[0]!.at <= now) {
      const e = this.pop();
      if (this.due.get(e.item) !== e.at) continue;
      this.due.delete(e.item);
      out.push(e.item);
    }
    return out;
  }

  /** Items scheduled or touched. */
  get size(): number {
    let n = this.due.size;
    for (const item of this.touched) if (!this.due.has(item)) n++;
    return n;
  }

  private rebuild(): void {
    this.heap = [];
    for (const [item, at] of this.due) this.push({ at, item });
  }

  private push(e: { at: number; item: T }): void {
    const heap = this.heap;
    let i = heap.length;
    heap.push(e);
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (heap[parent]!.at <= e.at) break;
      heap[i] = heap[parent]!;
      i = parent;
    }
    heap[i] = e;
  }

  private pop(): { at: number; item: T } {
    const heap = this.heap;
    const top = heap[0]!;
    const last = heap.pop()!;
    if (heap.length > 0) {
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        if (l >= heap.length) break;
        const r = l + 1;
        const c = r < heap.length && heap[r]!.at < heap[l]!.at ? r : l;
        if (heap[c]!.at >= last.at) break;
        heap[i] = heap[c]!;
        i = c;
      }
      heap[i] = last;
    }
    return top;
  }
}
