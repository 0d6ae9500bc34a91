/**
 * Lars' local agent protocol on the wire: the 8-byte header (msgid, msglen,
 * both int32 little-endian) and the protobuf bodies of schemas/lars.proto,
 * encoded and decoded by protobufjs from that file (the one source), the
 * reference for the hand-written codec of the sidecar's hot path
 * (lars-codec.ts).
 *
 * `parseFrame` classifies a datagram as a request or as one kind of bad
 * input; it never throws.
 */
import { readFileSync } from 'node:fs';
import protobuf from 'protobufjs';
import { BadDatagram, HEADER_BYTES, LarsRequest, MAX_BODY_BYTES, MsgId, decodeRequest } from './lars-codec.ts';

export { BadDatagram, HEADER_BYTES, MAX_BODY_BYTES, MsgId };

/** Return codes (schemas/lars.proto, enum RetCode). */
export const RetCode = {
  succ: 0,
  overload: 1,
  systemError: 2,
  noExist: 3,
} as const;
export type RetCode = (typeof RetCode)[keyof typeof RetCode];

export interface HostInfo {
  /** IPv4 as int32 in Lars' byte order (127.0.0.1 = 2130706433). */
  ip: number;
  port: number;
}
export interface GetHostRequest {
  seq: number;
  modid: number;
  cmdid: number;
}
export interface GetHostResponse {
  seq: number;
  modid: number;
  cmdid: number;
  retcode: number;
  host?: HostInfo | undefined;
}
export interface ReportRequest {
  modid: number;
  cmdid: number;
  host?: HostInfo | undefined;
  retcode: number;
  /** Extension of this sidecar: the call's duration, µs; 0 when not measured. */
  latency_us: number;
}
export interface GetRouteRequest {
  modid: number;
  cmdid: number;
}
export interface GetRouteResponse {
  modid: number;
  cmdid: number;
  host: HostInfo[];
}

export type Frame =
  | { readonly ok: true; readonly msgid: typeof MsgId.getHostRequest; readonly body: GetHostRequest }
  | { readonly ok: true; readonly msgid: typeof MsgId.reportRequest; readonly body: ReportRequest }
  | { readonly ok: true; readonly msgid: typeof MsgId.getRouteRequest; readonly body: GetRouteRequest }
  | { readonly ok: false; readonly kind: BadDatagram; readonly detail: string };

/** schemas/lars.proto from a checkout (src/sidecar) or an installed package (dist/src/sidecar). */
function loadProto(): string {
  const tried: string[] = [];
  for (const rel of ['../../schemas/lars.proto', '../../../schemas/lars.proto']) {
    const url = new URL(rel, import.meta.url);
    try {
      return readFileSync(url, 'utf8');
    } catch {
      tried.push(url.pathname);
    }
  }
  throw new Error(`schemas/lars.proto not found (looked at ${tried.join(', ')})`);
}

export interface LarsTypeSet {
  readonly HostInfo: protobuf.Type;
  readonly GetHostRequest: protobuf.Type;
  readonly GetHostResponse: protobuf.Type;
  readonly GetRouteRequest: protobuf.Type;
  readonly GetRouteResponse: protobuf.Type;
  readonly ReportRequest: protobuf.Type;
}

let loaded: LarsTypeSet | undefined;

/**
 * The message types of schemas/lars.proto, parsed on first use (a missing
 * file fails the sidecar's start, not every `lars` command).
 */
export function larsTypes(): LarsTypeSet {
  if (loaded) return loaded;
  const root = protobuf.parse(loadProto(), { keepCase: true }).root;
  checkEnums(root);
  loaded = {
    HostInfo: root.lookupType('lars.HostInfo'),
    GetHostRequest: root.lookupType('lars.GetHostRequest'),
    GetHostResponse: root.lookupType('lars.GetHostResponse'),
    ReportRequest: root.lookupType('lars.ReportRequest'),
    GetRouteRequest: root.lookupType('lars.GetRouteRequest'),
    GetRouteResponse: root.lookupType('lars.GetRouteResponse'),
  };
  return loaded;
}

/** The enums of the .proto must say what the constants above say. */
function checkEnums(root: protobuf.Root): void {
  const ids = root.lookupEnum('lars.MsgId').values;
  const rets = root.lookupEnum('lars.RetCode').values;
  const want: Array<[number | undefined, number]> = [
    [ids['GET_HOST_REQUEST'], MsgId.getHostRequest],
    [ids['GET_HOST_RESPONSE'], MsgId.getHostResponse],
    [ids['REPORT_REQUEST'], MsgId.reportRequest],
    [ids['GET_ROUTE_REQUEST'], MsgId.getRouteRequest],
    [ids['GET_ROUTE_RESPONSE'], MsgId.getRouteResponse],
    [rets['RET_SUCC'], RetCode.succ],
    [rets['RET_OVERLOAD'], RetCode.overload],
    [rets['RET_SYSTEM_ERROR'], RetCode.systemError],
    [rets['RET_NOEXIST'], RetCode.noExist],
  ];
  for (const [a, b] of want) if (a !== b) throw new Error(`schemas/lars.proto and lars-wire.ts disagree on ${b}`);
}

/** A frame: the header then `body`. */
export function frame(msgid: number, body: Uint8Array): Buffer {
  const out = Buffer.allocUnsafe(HEADER_BYTES + body.length);
  out.writeInt32LE(msgid, 0);
  out.writeInt32LE(body.length, 4);
  out.set(body, HEADER_BYTES);
  return out;
}

export function encodeGetHostRequest(m: GetHostRequest): Buffer {
  return frame(MsgId.getHostRequest, larsTypes().GetHostRequest.encode(m).finish());
}
export function encodeGetHostResponse(m: GetHostResponse): Buffer {
  return frame(MsgId.getHostResponse, larsTypes().GetHostResponse.encode(m).finish());
}
export function encodeReportRequest(m: Omit<ReportRequest, 'latency_us'> & { latency_us?: number }): Buffer {
  return frame(MsgId.reportRequest, larsTypes().ReportRequest.encode(m).finish());
}
export function encodeGetRouteRequest(m: GetRouteRequest): Buffer {
  return frame(MsgId.getRouteRequest, larsTypes().GetRouteRequest.encode(m).finish());
}
export function encodeGetRouteResponse(m: GetRouteResponse): Buffer {
  return frame(MsgId.getRouteResponse, larsTypes().GetRouteResponse.encode(m).finish());
}

const bad = (kind: BadDatagram, detail: string): Frame => ({ ok: false, kind, detail });

/**
 * Reads a datagram as a client request, or says which kind of bad input it
 * is. Never throws. The sidecar's hot path reads into a reused record
 * (lars-codec.ts `decodeRequest`); this gives the same answer as objects.
 */
export function parseFrame(d: Buffer): Frame {
  const r = new LarsRequest();
  const kind = decodeRequest(d, r);
  if (kind !== undefined) return bad(kind, r.detail);
  const host = r.hasHost ? { ip: r.hostIp, port: r.hostPort } : undefined;
  switch (r.msgid) {
    case MsgId.getHostRequest:
      return { ok: true, msgid: MsgId.getHostRequest, body: { seq: r.seq, modid: r.modid, cmdid: r.cmdid } };
    case MsgId.reportRequest:
      return { ok: true, msgid: MsgId.reportRequest, body: { modid: r.modid, cmdid: r.cmdid, host, retcode: r.retcode, latency_us: r.latencyUs } };
    default:
      return { ok: true, msgid: MsgId.getRouteRequest, body: { modid: r.modid, cmdid: r.cmdid } };
  }
}

/** Reads a datagram as a client request with protobufjs (the reference the codec is tested against). Never throws. */
export function parseFrameReference(d: Buffer): Frame {
  if (d.length < HEADER_BYTES) return bad(BadDatagram.short, `${d.length} bytes, under the 8-byte header`);
  const msgid = d.readInt32LE(0);
  const len = d.readInt32LE(4);
  if (len < 0) return bad(BadDatagram.negativeLength, `msglen ${len}`);
  if (len > MAX_BODY_BYTES) return bad(BadDatagram.oversize, `msglen ${len} over ${MAX_BODY_BYTES}`);
  if (len !== d.length - HEADER_BYTES) return bad(BadDatagram.lengthMismatch, `msglen ${len}, datagram body ${d.length - HEADER_BYTES} bytes`);
  const body = d.subarray(HEADER_BYTES);
  try {
    switch (msgid) {
      case MsgId.getHostRequest:
        return { ok: true, msgid, body: larsTypes().GetHostRequest.decode(body) as unknown as GetHostRequest };
      case MsgId.reportRequest:
        return { ok: true, msgid, body: larsTypes().ReportRequest.decode(body) as unknown as ReportRequest };
      case MsgId.getRouteRequest:
        return { ok: true, msgid, body: larsTypes().GetRouteRequest.decode(body) as unknown as GetRouteRequest };
      default:
        return bad(BadDatagram.unknownMsgid, `msgid ${msgid}`);
    }
  } catch (err) {
    return bad(BadDatagram.malformed, `msgid ${msgid}: ${(err as Error).message}`);
  }
}

/** Decodes a reply (clients and tests); undefined when it is not one. */
export function parseReply(d: Buffer): { msgid: 5; body: GetHostResponse } | { msgid: 8; body: GetRouteResponse } | undefined {
  if (d.length < HEADER_BYTES || d.readInt32LE(4) !== d.length - HEADER_BYTES) return undefined;
  const msgid = d.readInt32LE(0);
  const body = d.subarray(HEADER_BYTES);
  try {
    if (msgid === MsgId.getHostResponse) return { msgid, body: larsTypes().GetHostResponse.decode(body) as unknown as GetHostResponse };
    if (msgid === MsgId.getRouteResponse) return { msgid, body: larsTypes().GetRouteResponse.decode(body) as unknown as GetRouteResponse };
  } catch {
    return undefined;
  }
  return undefined;
}

// ------------------------------------------------------------ IPv4 as Lars' int32

/** `a.b.c.d` → int32 in Lars' byte order (127.0.0.1 = 2130706433; 128.0.0.0 and up negative). */
export function ipToInt(ip: string): number {
  let n = 0;
  let part = 0;
  for (let i = 0; i < ip.length; i++) {
    const c = ip.charCodeAt(i);
    if (c === 46) {
      n = (n << 8) | part;
      part = 0;
    } else part = part * 10 + (c - 48);
  }
  return (n << 8) | part;
}

/** int32 (or uint32) in Lars' byte order → `a.b.c.d`. */
export function intToIp(n: number): string {
  return `${(n >>> 24) & 255}.${(n >>> 16) & 255}.${(n >>> 8) & 255}.${n & 255}`;
}
