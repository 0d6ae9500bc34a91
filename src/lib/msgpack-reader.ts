/**
 * A reader of plain msgpack for the fast paths that skip building a decoded
 * object (the sink's report batches, src/analytics/transcode.ts; the agents'
 * route states, src/agent/route-state-reader.ts). It reads what the codec
 * (schemas/codec.ts) reads, the same way, and answers undefined (or false) for
 * anything it leaves to the codec: the caller then takes the general path.
 */
/** Reads plain msgpack; every method returns undefined for anything outside the fast path. */
export class Reader {
  p = 0;
  readonly b: Uint8Array;
  readonly dv: DataView;
  constructor(b: Uint8Array) {
    this.b = b;
    this.dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  }

  /** Integer of any msgpack width. */
  int(): number | undefined {
    const b = this.b;
    if (this.p >= b.length) return undefined;
    const t = b[this.p] as number;
    if (t <= 0x7f) {
      this.p++;
      return t;
    }
    if (t >= 0xe0) {
      this.p++;
      return t - 0x100;
    }
    // 0xcc–0xcf: unsigned of 1, 2, 4 or 8 bytes; 0xd0–0xd3: signed, the same widths
    if (t < 0xcc || t > 0xd3) return undefined;
    const signed = t >= 0xd0;
    const w = signed ? t - 0xd0 : t - 0xcc;
    const p = this.p + 1;
    const size = 1 << w;
    if (p + size > b.length) return undefined;
    this.p = p + size;
    const dv = this.dv;
    switch (w) {
      case 0:
        return signed ? dv.getInt8(p) : dv.getUint8(p);
      case 1:
        return signed ? dv.getInt16(p) : dv.getUint16(p);
      case 2:
        return signed ? dv.getInt32(p) : dv.getUint32(p);
      default:
        // 64-bit integers become numbers the way the codec reads them (int64AsType 'number').
        return (signed ? dv.getInt32(p) : dv.getUint32(p)) * 0x1_0000_0000 + dv.getUint32(p + 4);
    }
  }

  /** An integer, a float32 or a float64. */
  num(): number | undefined {
    const b = this.b;
    const t = b[this.p];
    if (t === 0xcb) {
      if (this.p + 9 > b.length) return undefined;
      const v = this.dv.getFloat64(this.p + 1);
      this.p += 9;
      return v;
    }
    if (t === 0xca) {
      if (this.p + 5 > b.length) return undefined;
      const v = this.dv.getFloat32(this.p + 1);
      this.p += 5;
      return v;
    }
    return this.int();
  }

  /**
   * A string of at most `max` UTF-16 units (the contract's lengths), from
   * well-formed UTF-8 that does not start with a byte order mark.
   */
  str(max: number): string | undefined {
    const b = this.b;
    if (this.p >= b.length) return undefined;
    const t = b[this.p] as number;
    let len: number;
    let start: number;
    if (t >= 0xa0 && t <= 0xbf) {
      len = t - 0xa0;
      start = this.p + 1;
    } else if (t === 0xd9) {
      if (this.p + 2 > b.length) return undefined;
      len = b[this.p + 1] as number;
      start = this.p + 2;
    } else if (t === 0xda) {
      if (this.p + 3 > b.length) return undefined;
      len = this.dv.getUint16(this.p + 1);
      start = this.p + 3;
    } else if (t === 0xdb) {
      if (this.p + 5 > b.length) return undefined;
      len = this.dv.getUint32(this.p + 1);
      start = this.p + 5;
    } else {
      return undefined;
    }
    // A UTF-16 unit takes at most 3 bytes of UTF-8.
    if (len > 3 * max || start + len > b.length) return undefined;
    let s: string | undefined = '';
    for (let i = start; i < start + len; i++) {
      const c = b[i] as number;
      if (c >= 0x80) {
        s = utf8(b, start, len);
        break;
      }
      s += String.fromCharCode(c);
    }
    if (s === undefined || s.length > max) return undefined;
    this.p = start + len;
    return s;
  }

  private len(fix: number, fixMax: number, t16: number, t32: number): number | undefined {
    const b = this.b;
    if (this.p >= b.length) return undefined;
    const t = b[this.p] as number;
    if (t >= fix && t <= fixMax) {
      this.p++;
      return t - fix;
    }
    if (t === t16) {
      if (this.p + 3 > b.length) return undefined;
      const n = this.dv.getUint16(this.p + 1);
      this.p += 3;
      return n;
    }
    if (t === t32) {
      if (this.p + 5 > b.length) return undefined;
      const n = this.dv.getUint32(this.p + 1);
      this.p += 5;
      return n;
    }
    return undefined;
  }

  array(): number | undefined {
    return this.len(0x90, 0x9f, 0xdc, 0xdd);
  }

  map(): number | undefined {
    return this.len(0x80, 0x8f, 0xde, 0xdf);
  }

  nil(): boolean {
    if (this.b[this.p] === 0xc0) {
      this.p++;
      return true;
    }
    return false;
  }
}

const UTF8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/** Well-formed UTF-8 without a leading byte order mark (decoders disagree on it), else undefined. */
export function utf8(b: Uint8Array, start: number, len: number): string | undefined {
  if (len >= 3 && b[start] === 0xef && b[start + 1] === 0xbb && b[start + 2] === 0xbf) return undefined;
  try {
    return UTF8.decode(b.subarray(start, start + len));
  } catch {
    return undefined;
  }
}

/** Deepest nesting read under an unknown key; deeper values go to the general path. */
export const MAX_SKIP_DEPTH = 32;

/**
 * Steps over one value under an unknown key, accepting only what the codec
 * decodes without failing: plain msgpack without extension types, and map
 * keys that are strings or scalars.
 */
export function skipValue(r: Reader, depth: number): boolean {
  const b = r.b;
  if (r.p >= b.length || depth > MAX_SKIP_DEPTH) return false;
  const t = b[r.p] as number;
  if (t <= 0x7f || t >= 0xe0 || t === 0xc0 || t === 0xc2 || t === 0xc3) {
    r.p++;
    return true;
  }
  if ((t >= 0xcc && t <= 0xcf) || (t >= 0xd0 && t <= 0xd3) || t === 0xca || t === 0xcb) return r.num() !== undefined;
  if ((t >= 0xa0 && t <= 0xbf) || t === 0xd9 || t === 0xda || t === 0xdb || t === 0xc4 || t === 0xc5 || t === 0xc6) {
    // Text or bytes: only the length matters (the codec decodes any bytes of a string).
    const size = t >= 0xa0 && t <= 0xbf ? 0 : t === 0xd9 || t === 0xc4 ? 1 : t === 0xda || t === 0xc5 ? 2 : 4;
    if (r.p + 1 + size > b.length) return false;
    const len = size === 0 ? t - 0xa0 : size === 1 ? (b[r.p + 1] as number) : size === 2 ? r.dv.getUint16(r.p + 1) : r.dv.getUint32(r.p + 1);
    if (r.p + 1 + size + len > b.length) return false;
    r.p += 1 + size + len;
    return true;
  }
  if ((t >= 0x90 && t <= 0x9f) || t === 0xdc || t === 0xdd) {
    const n = r.array();
    if (n === undefined) return false;
    for (let i = 0; i < n; i++) if (!skipValue(r, depth + 1)) return false;
    return true;
  }
  if ((t >= 0x80 && t <= 0x8f) || t === 0xde || t === 0xdf) {
    const n = r.map();
    if (n === undefined) return false;
    for (let i = 0; i < n; i++) {
      const k = b[r.p];
      const scalarKey = k !== undefined && (k <= 0x7f || k >= 0xe0 || (k >= 0xa0 && k <= 0xbf) || k === 0xd9 || k === 0xda || k === 0xdb || k === 0xc0 || k === 0xc2 || k === 0xc3 || (k >= 0xca && k <= 0xd3));
      if (!scalarKey || !skipValue(r, depth + 1) || !skipValue(r, depth + 1)) return false;
    }
    return true;
  }
  return false;
}
