/**
 * Lars' UDP messages decoded and encoded by hand, for the sidecar's hot
 * path: the few messages of schemas/lars.proto, read into one reused
 * request record and written into caller-given buffers, so a datagram costs
 * no object of ours. protobufjs (lars-wire.ts) stays the reference: the
 * unit tests check this codec against it, byte for byte and field by field.
 *
 * Decoding follows proto3 as protobufjs reads these messages: fields in any
 * order, the last occurrence wins (a second `host` replaces the first),
 * unknown fields of wire types 0, 1, 2 and 5 skipped, int32 and uint32 the
 * low 32 bits of a varint of up to 10 bytes. Stricter where protobufjs
 * guesses: field number 0 or a tag beyond 32 bits, a known field with the wrong wire type, a group
 * (wire types 3 and 4), wire types 6 and 7, a truncated varint or field, or a varint longer
 * than 10 bytes make the datagram malformed. Nothing here throws.
 */

/** msgids of the header (schemas/lars.proto, enum MsgId). */
export const MsgId = {
  getHostRequest: 4,
  getHostResponse: 5,
  reportRequest: 6,
  getRouteRequest: 7,
  getRouteResponse: 8,
} as const;
export type MsgId = (typeof MsgId)[keyof typeof MsgId];

export const HEADER_BYTES = 8;
/** Largest body the original accepts: a UDP payload (65535 - 8) less the header. */
export const MAX_BODY_BYTES = 65527;

/** Kinds of bad datagrams, counted apart. */
export const BadDatagram = {
  /** Shorter than the header. */
  short: 'short',
  /** msglen < 0. */
  negativeLength: 'negative_length',
  /** msglen > 65527. */
  oversize: 'oversize',
  /** msglen ≠ datagram length − 8 (truncated or trailing bytes). */
  lengthMismatch: 'length_mismatch',
  /** msgid not one a client sends (4, 6, 7). */
  unknownMsgid: 'unknown_msgid',
  /** The body is not a protobuf message of its type. */
  malformed: 'malformed',
} as const;
export type BadDatagram = (typeof BadDatagram)[keyof typeof BadDatagram];

/** One request's fields, overwritten by every `decodeRequest`. */
export class LarsRequest {
  msgid = 0;
  /** GetHost. */
  seq = 0;
  modid = 0;
  cmdid = 0;
  /** Report. */
  retcode = 0;
  latencyUs = 0;
  hasHost = false;
  hostIp = 0;
  hostPort = 0;
  /** Why the last datagram was refused (set only then). */
  detail = '';

  /** Every field back to its proto3 default, for a request of `msgid`. */
  reset(msgid: number): void {
    this.msgid = msgid;
    this.seq = 0;
    this.modid = 0;
    this.cmdid = 0;
    this.retcode = 0;
    this.latencyUs = 0;
    this.hasHost = false;
    this.hostIp = 0;
    this.hostPort = 0;
  }
}

// The decoder's cursor: module state, so that reading a varint allocates nothing.
let pos = 0;
/** Set by `varint` when the bytes run out or the varint is longer than 10 bytes. */
let broken = false;

/** A varint at `pos` (at most `end`): its low 32 bits as int32. */
function varint(d: Uint8Array, end: number): number {
  let v = 0;
  for (let k = 0; k < 10; k++) {
    if (pos >= end) {
      broken = true;
      return 0;
    }
    const b = d[pos++]!;
    if (k < 5) v |= (b & 0x7f) << (7 * k);
    if (b < 0x80) return v;
  }
  broken = true;
  return 0;
}

/** A tag at `pos`: a varint of at most 5 bytes whose value fits 32 bits. */
function tagVarint(d: Uint8Array, end: number): number {
  let v = 0;
  for (let k = 0; k < 5; k++) {
    if (pos >= end) break;
    const b = d[pos++]!;
    if (k === 4 && b > 0x0f) break;
    v |= (b & 0x7f) << (7 * k);
    if (b < 0x80) return v >>> 0;
  }
  broken = true;
  return 0;
}

/** Skips an unknown field of wire type `wt`; false when it cannot be skipped. */
function skip(d: Uint8Array, wt: number, end: number): boolean {
  switch (wt) {
    case 0:
      varint(d, end);
      return !broken;
    case 1:
      pos += 8;
      return pos <= end;
    case 2: {
      const n = varint(d, end);
      if (broken || n < 0) return false;
      pos += n;
      return pos <= end;
    }
    case 5:
      pos += 4;
      return pos <= end;
    default:
      return false;
  }
}

/** A HostInfo of `len` bytes at `pos` into `r`; false when malformed. */
function decodeHost(d: Uint8Array, len: number, end: number, r: LarsRequest): boolean {
  const stop = pos + len;
  if (len < 0 || stop > end) return false;
  r.hasHost = true;
  r.hostIp = 0;
  r.hostPort = 0;
  while (pos < stop) {
    const tag = tagVarint(d, stop);
    if (broken) return false;
    const field = tag >>> 3;
    const wt = tag & 7;
    if (field === 0) return false;
    if (field === 1 || field === 2) {
      if (wt !== 0) return false;
      const v = varint(d, stop);
      if (broken) return false;
      if (field === 1) r.hostIp = v;
      else r.hostPort = v;
    } else if (!skip(d, wt, stop)) return false;
  }
  return pos === stop;
}

/** Fields of each request: which numbers are varints read into which slot (0 = not a field of it). */
const SEQ = 1;
const MODID = 2;
const CMDID = 3;
const RETCODE = 4;
const LATENCY = 5;
const HOST = 6;
/** [msgid][field number] → slot, for field numbers 1..15. */
const LAYOUT: Record<number, Uint8Array> = {
  [MsgId.getHostRequest]: Uint8Array.of(0, SEQ, MODID, CMDID, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0),
  [MsgId.reportRequest]: Uint8Array.of(0, MODID, CMDID, HOST, RETCODE, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, LATENCY),
  [MsgId.getRouteRequest]: Uint8Array.of(0, MODID, CMDID, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0),
};

function refuse(r: LarsRequest, kind: BadDatagram, detail: string): BadDatagram {
  r.detail = detail;
  return kind;
}

/**
 * Reads a datagram as a client request into `r`: undefined when it is one
 * (its fields in `r`), else the kind of bad input (why in `r.detail`).
 */
export function decodeRequest(d: Uint8Array, r: LarsRequest): BadDatagram | undefined {
  const n = d.length;
  if (n < HEADER_BYTES) return refuse(r, BadDatagram.short, `${n} bytes, under the 8-byte header`);
  const msgid = d[0]! | (d[1]! << 8) | (d[2]! << 16) | (d[3]! << 24);
  const len = d[4]! | (d[5]! << 8) | (d[6]! << 16) | (d[7]! << 24);
  if (len < 0) return refuse(r, BadDatagram.negativeLength, `msglen ${len}`);
  if (len > MAX_BODY_BYTES) return refuse(r, BadDatagram.oversize, `msglen ${len} over ${MAX_BODY_BYTES}`);
  if (len !== n - HEADER_BYTES) return refuse(r, BadDatagram.lengthMismatch, `msglen ${len}, datagram body ${n - HEADER_BYTES} bytes`);
  const layout = LAYOUT[msgid];
  if (layout === undefined) return refuse(r, BadDatagram.unknownMsgid, `msgid ${msgid}`);
  r.reset(msgid);
  pos = HEADER_BYTES;
  broken = false;
  while (pos < n) {
    const at = pos;
    const tag = tagVarint(d, n);
    if (broken) return refuse(r, BadDatagram.malformed, `msgid ${msgid}: bad tag at byte ${at}`);
    const field = tag >>> 3;
    const wt = tag & 7;
    if (field === 0) return refuse(r, BadDatagram.malformed, `msgid ${msgid}: field number 0 at byte ${at}`);
    const slot = field < 16 ? layout[field]! : 0;
    if (slot === 0) {
      if (!skip(d, wt, n)) return refuse(r, BadDatagram.malformed, `msgid ${msgid}: field ${field} of wire type ${wt} at byte ${at} cannot be read`);
      continue;
    }
    if (slot === HOST) {
      if (wt !== 2) return refuse(r, BadDatagram.malformed, `msgid ${msgid}: field ${field} has wire type ${wt}, not 2`);
      const hl = varint(d, n);
      if (broken || !decodeHost(d, hl, n, r)) return refuse(r, BadDatagram.malformed, `msgid ${msgid}: host at byte ${at} is not a HostInfo`);
      continue;
    }
    if (wt !== 0) return refuse(r, BadDatagram.malformed, `msgid ${msgid}: field ${field} has wire type ${wt}, not 0`);
    const v = varint(d, n);
    if (broken) return refuse(r, BadDatagram.malformed, `msgid ${msgid}: truncated varint at byte ${at}`);
    switch (slot) {
      case SEQ:
        r.seq = v >>> 0;
        break;
      case MODID:
        r.modid = v;
        break;
      case CMDID:
        r.cmdid = v;
        break;
      case RETCODE:
        r.retcode = v;
        break;
      default:
        r.latencyUs = v >>> 0;
    }
  }
  return undefined;
}

// ------------------------------------------------------------ encoding into a given buffer

/** Largest GetHostResponse: header, four int32 fields and a host, each at its longest varint. */
export const MAX_GET_HOST_REPLY_BYTES = HEADER_BYTES + 6 + 3 * 11 + 2 + 22;

/** Writes `v` (int32; negative as a 10-byte varint) at `at`; returns the end. */
export function writeInt32(out: Uint8Array, at: number, v: number): number {
  if (v >= 0) return writeUint32(out, at, v);
  // two's complement over 64 bits: the low 32 bits, then ones
  const lo = v >>> 0;
  out[at++] = (lo & 0x7f) | 0x80;
  out[at++] = ((lo >>> 7) & 0x7f) | 0x80;
  out[at++] = ((lo >>> 14) & 0x7f) | 0x80;
  out[at++] = ((lo >>> 21) & 0x7f) | 0x80;
  out[at++] = (lo >>> 28) | 0x70 | 0x80;
  out[at++] = 0xff;
  out[at++] = 0xff;
  out[at++] = 0xff;
  out[at++] = 0xff;
  out[at++] = 0x01;
  return at;
}

/** Writes `v` (0..2^32-1) as a varint at `at`; returns the end. */
export function writeUint32(out: Uint8Array, at: number, v: number): number {
  while (v > 0x7f) {
    out[at++] = (v & 0x7f) | 0x80;
    v >>>= 7;
  }
  out[at++] = v;
  return at;
}

function int32Field(out: Uint8Array, at: number, tag: number, v: number): number {
  if (v === 0) return at;
  out[at] = tag;
  return writeInt32(out, at + 1, v);
}

/** Bytes of a HostInfo body. */
function hostBytes(ip: number, port: number): number {
  return (ip === 0 ? 0 : ip < 0 ? 11 : 1 + uint32Bytes(ip)) + (port === 0 ? 0 : port < 0 ? 11 : 1 + uint32Bytes(port));
}

function uint32Bytes(v: number): number {
  return v < 0x80 ? 1 : v < 0x4000 ? 2 : v < 0x200000 ? 3 : v < 0x10000000 ? 4 : 5;
}

function hostField(out: Uint8Array, at: number, tag: number, ip: number, port: number): number {
  out[at++] = tag;
  out[at++] = hostBytes(ip, port);
  at = int32Field(out, at, 0x08, ip);
  return int32Field(out, at, 0x10, port);
}

function header(out: Uint8Array, msgid: number, bodyLen: number): void {
  out[0] = msgid;
  out[1] = 0;
  out[2] = 0;
  out[3] = 0;
  out[4] = bodyLen & 0xff;
  out[5] = (bodyLen >>> 8) & 0xff;
  out[6] = (bodyLen >>> 16) & 0xff;
  out[7] = (bodyLen >>> 24) & 0xff;
}

/**
 * A GetHostResponse frame in `out` (at least MAX_GET_HOST_REPLY_BYTES);
 * returns its length. `hasHost` false leaves the host off (no host picked).
 */
export function encodeGetHostReply(out: Uint8Array, seq: number, modid: number, cmdid: number, retcode: number, hasHost: boolean, ip: number, port: number): number {
  let at = HEADER_BYTES;
  if (seq !== 0) {
    out[at] = 0x08;
    at = writeUint32(out, at + 1, seq >>> 0);
  }
  at = int32Field(out, at, 0x10, modid);
  at = int32Field(out, at, 0x18, cmdid);
  at = int32Field(out, at, 0x20, retcode);
  if (hasHost) at = hostField(out, at, 0x2a, ip, port);
  header(out, MsgId.getHostResponse, at - HEADER_BYTES);
  return at;
}

/** Bytes of a GetRouteResponse frame for `hosts` (ip, port pairs). */
export function getRouteReplyBytes(modid: number, cmdid: number, hosts: ArrayLike<number>): number {
  let n = HEADER_BYTES + (modid === 0 ? 0 : modid < 0 ? 11 : 1 + uint32Bytes(modid)) + (cmdid === 0 ? 0 : cmdid < 0 ? 11 : 1 + uint32Bytes(cmdid));
  for (let i = 0; i + 1 < hosts.length; i += 2) n += 2 + hostBytes(hosts[i]!, hosts[i + 1]!);
  return n;
}

/** A GetRouteResponse frame in `out` (of getRouteReplyBytes at least); `hosts` is ip, port, ip, port...; returns its length. */
export function encodeGetRouteReply(out: Uint8Array, modid: number, cmdid: number, hosts: ArrayLike<number>): number {
  let at = HEADER_BYTES;
  at = int32Field(out, at, 0x08, modid);
  at = int32Field(out, at, 0x10, cmdid);
  for (let i = 0; i + 1 < hosts.length; i += 2) at = hostField(out, at, 0x1a, hosts[i]!, hosts[i + 1]!);
  header(out, MsgId.getRouteResponse, at - HEADER_BYTES);
  return at;
}
