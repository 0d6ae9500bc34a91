/**
 * A followed route's latest state in shared memory, written by the sidecar's
 * main thread on every route update and read by each UDP thread when it
 * next picks from the route: an update wakes no thread, and a thread that
 * does not pick from the route meanwhile decodes nothing.
 *
 * Layout: int32 sequence, status, length; the encoded state from byte 16.
 * A seqlock: the writer makes the sequence odd, writes, makes it even; a
 * reader copies the bytes between two reads of the same even sequence, else
 * keeps what it had and reads again on its next pick. A state larger than
 * the arena goes into a new one, twice the size, which the main thread
 * posts to the threads.
 */

/** What an arena holds. */
export const ArenaStatus = {
  /** Nothing yet. */
  loading: 0,
  /** A state (its bytes). */
  state: 1,
  /** The route is not registered (no state). */
  unregistered: 2,
} as const;
export type ArenaStatus = (typeof ArenaStatus)[keyof typeof ArenaStatus];

const SEQ = 0;
const STATUS = 1;
const LEN = 2;
const DATA = 16;
/** Smallest arena, bytes of state. */
const MIN_BYTES = 4096;

/** The main thread's side of a route's arena. */
export class ArenaWriter {
  sab: SharedArrayBuffer;
  private i32: Int32Array;
  private u8: Uint8Array;

  constructor(bytes = MIN_BYTES) {
    this.sab = new SharedArrayBuffer(DATA + Math.max(MIN_BYTES, bytes));
    this.i32 = new Int32Array(this.sab, 0, 4);
    this.u8 = new Uint8Array(this.sab);
  }

  /** Writes a state; true when it took a new, larger arena (`sab`, to be posted to the readers). */
  write(status: ArenaStatus, bytes?: Uint8Array): boolean {
    const n = bytes?.length ?? 0;
    let grown = false;
    if (DATA + n > this.sab.byteLength) {
      const next = new ArenaWriter(2 * n);
      this.sab = next.sab;
      this.i32 = next.i32;
      this.u8 = next.u8;
      grown = true;
    }
    Atomics.add(this.i32, SEQ, 1);
    if (bytes !== undefined) this.u8.set(bytes, DATA);
    Atomics.store(this.i32, LEN, n);
    Atomics.store(this.i32, STATUS, status);
    Atomics.add(this.i32, SEQ, 1);
    return grown;
  }
}

/** A thread's side: `read` answers what changed since its last read, or undefined. */
export class ArenaReader {
  private readonly i32: Int32Array;
  private readonly u8: Uint8Array;
  private seen = 0;

  constructor(sab: SharedArrayBuffer) {
    this.i32 = new Int32Array(sab, 0, 4);
    this.u8 = new Uint8Array(sab);
  }

  /** True when the writer has written since the last `read` (one atomic load: the pick path asks it). */
  changed(): boolean {
    return Atomics.load(this.i32, SEQ) !== this.seen;
  }

  /** The status and bytes written since the last read, or undefined (none, or a write under way). */
  read(): { status: ArenaStatus; bytes: Uint8Array } | undefined {
    const s = Atomics.load(this.i32, SEQ);
    if (s === this.seen || (s & 1) === 1) return undefined;
    const status = Atomics.load(this.i32, STATUS) as ArenaStatus;
    const n = Atomics.load(this.i32, LEN);
    const bytes = this.u8.slice(DATA, DATA + n);
    if (Atomics.load(this.i32, SEQ) !== s) return undefined;
    this.seen = s;
    return { status, bytes };
  }
}
