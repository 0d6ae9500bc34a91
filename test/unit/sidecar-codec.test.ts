/**
 * The sidecar's hand-written codec of Lars' UDP messages
 * (src/sidecar/lars-codec.ts): the protocol's test vectors both ways, the
 * same bytes and fields as the protobufjs reference (lars-wire.ts) for any
 * message, and malformed input refused by kind, never thrown.
 */
import { expect } from 'chai';
import fc from 'fast-check';
import {
  BadDatagram,
  LarsRequest,
  MAX_GET_HOST_REPLY_BYTES,
  MsgId,
  decodeRequest,
  encodeGetHostReply,
  encodeGetRouteReply,
  getRouteReplyBytes,
} from '../../src/sidecar/lars-codec.ts';
import {
  encodeGetHostRequest,
  encodeGetHostResponse,
  encodeGetRouteRequest,
  encodeGetRouteResponse,
  encodeReportRequest,
  ipToInt,
  parseFrameReference,
  parseReply,
} from '../../src/sidecar/lars-wire.ts';

const hex = (s: string): Buffer => Buffer.from(s.replace(/\s+/g, ''), 'hex');

function withHeader(msgid: number, body: Buffer): Buffer {
  const h = Buffer.alloc(8);
  h.writeInt32LE(msgid, 0);
  h.writeInt32LE(body.length, 4);
  return Buffer.concat([h, body]);
}

function decoded(d: Buffer): LarsRequest {
  const r = new LarsRequest();
  const kind = decodeRequest(d, r);
  if (kind !== undefined) throw new Error(`${d.toString('hex')} refused as ${kind}: ${r.detail}`);
  return r;
}

function getHostReply(seq: number, modid: number, cmdid: number, retcode: number, host?: { ip: number; port: number }): Buffer {
  const out = Buffer.alloc(MAX_GET_HOST_REPLY_BYTES);
  const n = encodeGetHostReply(out, seq, modid, cmdid, retcode, host !== undefined, host?.ip ?? 0, host?.port ?? 0);
  return out.subarray(0, n);
}

function getRouteReply(modid: number, cmdid: number, hosts: Array<{ ip: number; port: number }>): Buffer {
  const flat = Int32Array.from(hosts.flatMap((h) => [h.ip, h.port]));
  const out = Buffer.alloc(getRouteReplyBytes(modid, cmdid, flat));
  const n = encodeGetRouteReply(out, modid, cmdid, flat);
  expect(n, 'the computed size is the written size').to.equal(out.length);
  return out;
}

/**
 * protobufjs reads a varint past its fifth byte by skipping five more bytes
 * whatever they hold; the codec reads it to its last byte, as protobuf
 * says. Random bytes with five continuation bytes in a row are left out of
 * the comparison with it.
 */
function hasLongRun(bytes: Uint8Array): boolean {
  let run = 0;
  for (const b of bytes) {
    run = b >= 0x80 ? run + 1 : 0;
    if (run >= 5) return true;
  }
  return false;
}

const int32 = fc.integer({ min: -(2 ** 31), max: 2 ** 31 - 1 });
const uint32 = fc.integer({ min: 0, max: 2 ** 32 - 1 });
const hostArb = fc.record({ ip: int32, port: int32 });

describe('sidecar codec', () => {
  it('sidecar codec - the protocol test vectors decode to their fields', () => {
    const gh = decoded(hex('04000000 06000000 0807 1001 1801'));
    expect([gh.msgid, gh.seq, gh.modid, gh.cmdid]).to.deep.equal([MsgId.getHostRequest, 7, 1, 1]);
    const rep = decoded(hex('06000000 0f000000 0801 1001 1a09 08818080f807 10a946'));
    expect([rep.msgid, rep.modid, rep.cmdid, rep.hasHost, rep.hostIp, rep.hostPort, rep.retcode, rep.latencyUs]).to.deep.equal([MsgId.reportRequest, 1, 1, true, 2130706433, 9001, 0, 0]);
    const gr = decoded(hex('07000000 04000000 0801 1001'));
    expect([gr.msgid, gr.modid, gr.cmdid]).to.deep.equal([MsgId.getRouteRequest, 1, 1]);
  });

  it('sidecar codec - replies encode to the protocol test vectors', () => {
    expect(getHostReply(7, 1, 1, 0, { ip: ipToInt('127.0.0.3'), port: 9001 })).to.deep.equal(hex('05000000 11000000 0807 1001 1801 2a09 08838080f807 10a946'));
    expect(getHostReply(7, 11, 1, 3)).to.deep.equal(hex('05000000 08000000 0807 100b 1801 2003'));
    const route = getRouteReply(1, 1, [1, 2, 3].map((i) => ({ ip: ipToInt(`127.0.0.${i}`), port: 9000 + i })));
    expect([route.readInt32LE(0), route.readInt32LE(4)]).to.deep.equal([8, 37]);
    expect(route.subarray(12).toString('hex').match(/1a09/g)).to.have.length(3);
  });

  it('sidecar codec - replies are byte for byte what protobufjs writes, negative ints included', () => {
    fc.assert(
      fc.property(uint32, int32, int32, int32, fc.option(hostArb, { nil: undefined }), (seq, modid, cmdid, retcode, host) => {
        const mine = getHostReply(seq, modid, cmdid, retcode, host);
        expect(mine.length).to.be.at.most(MAX_GET_HOST_REPLY_BYTES);
        expect(mine.toString('hex')).to.equal(encodeGetHostResponse({ seq, modid, cmdid, retcode, host }).toString('hex'));
        const back = parseReply(mine);
        expect(back?.msgid).to.equal(5);
      }),
      { numRuns: 2000 },
    );
    fc.assert(
      fc.property(int32, int32, fc.array(hostArb, { maxLength: 20 }), (modid, cmdid, host) => {
        expect(getRouteReply(modid, cmdid, host).toString('hex')).to.equal(encodeGetRouteResponse({ modid, cmdid, host }).toString('hex'));
      }),
      { numRuns: 1000 },
    );
  });

  it('sidecar codec - requests written by protobufjs decode to the same fields', () => {
    fc.assert(
      fc.property(uint32, int32, int32, (seq, modid, cmdid) => {
        const r = decoded(encodeGetHostRequest({ seq, modid, cmdid }));
        expect([r.msgid, r.seq, r.modid, r.cmdid]).to.deep.equal([MsgId.getHostRequest, seq, modid, cmdid]);
        const g = decoded(encodeGetRouteRequest({ modid, cmdid }));
        expect([g.msgid, g.modid, g.cmdid]).to.deep.equal([MsgId.getRouteRequest, modid, cmdid]);
      }),
      { numRuns: 1000 },
    );
    fc.assert(
      fc.property(int32, int32, fc.option(hostArb, { nil: undefined }), int32, uint32, (modid, cmdid, host, retcode, latency_us) => {
        const r = decoded(encodeReportRequest({ modid, cmdid, host, retcode, latency_us }));
        expect([r.msgid, r.modid, r.cmdid, r.hasHost, r.hostIp, r.hostPort, r.retcode, r.latencyUs]).to.deep.equal([
          MsgId.reportRequest,
          modid,
          cmdid,
          host !== undefined,
          host?.ip ?? 0,
          host?.port ?? 0,
          retcode,
          latency_us,
        ]);
      }),
      { numRuns: 1000 },
    );
  });

  it('sidecar codec - one record serves every datagram: nothing of the previous request is left in it', () => {
    const r = new LarsRequest();
    expect(decodeRequest(hex('06000000 0f000000 0801 1001 1a09 08818080f807 10a946'), r)).to.equal(undefined);
    expect(r.hasHost).to.equal(true);
    expect(decodeRequest(hex('04000000 04000000 1002 1803'), r)).to.equal(undefined);
    expect([r.msgid, r.seq, r.modid, r.cmdid, r.hasHost, r.hostIp, r.hostPort]).to.deep.equal([MsgId.getHostRequest, 0, 2, 3, false, 0, 0]);
  });

  it('sidecar codec - unknown fields are skipped, and the last occurrence of a field wins, as protobufjs reads them', () => {
    // GetHost with a fixed64 (field 9), a fixed32 (field 10), bytes (field 11) and a varint (field 20) it does not know
    const body = hex('0807 1001 1801 4901020304050607 08 55aabbccdd 5a03616263 a00196 01 1005');
    const r = decoded(withHeader(4, body));
    expect([r.seq, r.modid, r.cmdid]).to.deep.equal([7, 5, 1]);
    const ref = parseFrameReference(withHeader(4, body));
    expect(ref.ok && ref.msgid === MsgId.getHostRequest && [ref.body.seq, ref.body.modid, ref.body.cmdid]).to.deep.equal([7, 5, 1]);
    // a second host replaces the first, field by field absent = 0
    const two = decoded(withHeader(6, hex('0801 1001 1a04 0801 1050 1a02 0802')));
    expect([two.hostIp, two.hostPort]).to.deep.equal([2, 0]);
  });

  it('sidecar codec - malformed bodies are refused by kind and never thrown', () => {
    const cases: Array<[Buffer, BadDatagram]> = [
      [Buffer.alloc(3), BadDatagram.short],
      [withHeader(4, hex('08')), BadDatagram.malformed], // truncated varint
      [withHeader(4, hex('08ffffffffffffffffffff01')), BadDatagram.malformed], // an 11-byte varint
      [withHeader(4, hex('0a0107')), BadDatagram.malformed], // seq with wire type 2
      [withHeader(6, hex('1801')), BadDatagram.malformed], // host with wire type 0
      [withHeader(6, hex('1a05 08')), BadDatagram.malformed], // host longer than the datagram
      [withHeader(6, hex('1a02 0880')), BadDatagram.malformed], // host whose varint runs past its end
      [withHeader(6, hex('1a02 0a00')), BadDatagram.malformed], // host ip with wire type 2
      [withHeader(4, hex('4b 4c')), BadDatagram.malformed], // a group
      [withHeader(4, hex('4e')), BadDatagram.malformed], // wire type 6
      [withHeader(4, hex('0000')), BadDatagram.malformed], // field number 0
      [withHeader(4, hex('a880808010 00')), BadDatagram.malformed], // a tag beyond 32 bits
      [withHeader(4, hex('4901')), BadDatagram.malformed], // a fixed64 cut short
      [withHeader(4, hex('5a05 61')), BadDatagram.malformed], // bytes cut short
      [withHeader(4, hex('5affffffff0f')), BadDatagram.malformed], // a negative length
      [withHeader(5, hex('0801')), BadDatagram.unknownMsgid],
      [Buffer.concat([hex('04000000 ffffffff')]), BadDatagram.negativeLength],
      [hex('04000000 f8ff0000 00'), BadDatagram.oversize],
      [hex('04000000 03000000 0801'), BadDatagram.lengthMismatch],
    ];
    const r = new LarsRequest();
    for (const [d, kind] of cases) {
      expect(decodeRequest(d, r), d.toString('hex')).to.equal(kind);
      expect(r.detail, 'a detail for the log').to.be.a('string').and.not.equal('');
    }
  });

  it('sidecar codec - any bytes after a header: a request protobufjs reads the same, or malformed; never a throw', () => {
    const r = new LarsRequest();
    fc.assert(
      fc.property(fc.constantFrom(4, 6, 7), fc.uint8Array({ maxLength: 64 }), (msgid, bytes) => {
        const d = withHeader(msgid, Buffer.from(bytes));
        const kind = decodeRequest(d, r);
        fc.pre(kind !== undefined || !hasLongRun(bytes));
        if (kind !== undefined) return kind === BadDatagram.malformed;
        const ref = parseFrameReference(d);
        if (!ref.ok) return false;
        const b = ref.body as { seq?: number; modid: number; cmdid: number; retcode?: number; latency_us?: number; host?: { ip: number; port: number } | null };
        if (b.modid !== r.modid || b.cmdid !== r.cmdid) return false;
        if (msgid === 4) return (b.seq ?? 0) === r.seq;
        if (msgid === 6) return (b.retcode ?? 0) === r.retcode && (b.latency_us ?? 0) === r.latencyUs && (b.host != null) === r.hasHost && (b.host?.ip ?? 0) === r.hostIp && (b.host?.port ?? 0) === r.hostPort;
        return true;
      }),
      { numRuns: 5000 },
    );
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 80 }), (bytes) => {
        const kind = decodeRequest(Buffer.from(bytes), r);
        return kind === undefined || Object.values(BadDatagram).includes(kind);
      }),
      { numRuns: 3000 },
    );
  });
});
