/**
 * Lars' UDP wire (src/sidecar/lars-wire.ts, from schemas/lars.proto): the
 * test vectors of Lars' protocol description byte for byte, the int32
 * addresses, and every kind of bad datagram classified without a throw.
 */
import { expect } from 'chai';
import fc from 'fast-check';
import {
  BadDatagram,
  MAX_BODY_BYTES,
  MsgId,
  encodeGetHostRequest,
  encodeGetHostResponse,
  encodeGetRouteRequest,
  encodeGetRouteResponse,
  encodeReportRequest,
  intToIp,
  ipToInt,
  parseFrame,
  parseReply,
} from '../../src/sidecar/lars-wire.ts';
import { validateReport } from '../../src/sidecar/http-api.ts';

const hex = (s: string): Buffer => Buffer.from(s.replace(/\s+/g, ''), 'hex');

function header(msgid: number, msglen: number): Buffer {
  const b = Buffer.alloc(8);
  b.writeInt32LE(msgid, 0);
  b.writeInt32LE(msglen, 4);
  return b;
}

describe('sidecar wire', () => {
  it('sidecar wire - GetHost request and replies encode to the protocol test vectors', () => {
    expect(encodeGetHostRequest({ seq: 7, modid: 1, cmdid: 1 })).to.deep.equal(hex('04000000 06000000 0807 1001 1801'));
    expect(encodeGetHostResponse({ seq: 7, modid: 1, cmdid: 1, retcode: 0, host: { ip: ipToInt('127.0.0.3'), port: 9001 } })).to.deep.equal(
      hex('05000000 11000000 0807 1001 1801 2a09 08838080f807 10a946'),
    );
    expect(encodeGetHostResponse({ seq: 7, modid: 11, cmdid: 1, retcode: 3 })).to.deep.equal(hex('05000000 08000000 0807 100b 1801 2003'));
    expect(encodeReportRequest({ modid: 1, cmdid: 1, host: { ip: 2130706433, port: 9001 }, retcode: 0 })).to.deep.equal(hex('06000000 0f000000 0801 1001 1a09 08818080f807 10a946'));
    expect(encodeGetRouteRequest({ modid: 1, cmdid: 1 })).to.deep.equal(hex('07000000 04000000 0801 1001'));
    const route = encodeGetRouteResponse({ modid: 1, cmdid: 1, host: [1, 2, 3].map((i) => ({ ip: ipToInt(`127.0.0.${i}`), port: 9000 + i })) });
    expect(route.readInt32LE(0)).to.equal(8);
    expect(route.readInt32LE(4)).to.equal(37);
    expect(route.subarray(12).toString('hex').match(/1a09/g)).to.have.length(3);
  });

  it('sidecar wire - the test vectors decode to their fields', () => {
    const gh = parseFrame(hex('04000000 06000000 0807 1001 1801'));
    expect(gh.ok && gh.msgid === MsgId.getHostRequest && { ...gh.body }).to.deep.equal({ seq: 7, modid: 1, cmdid: 1 });
    const rep = parseFrame(hex('06000000 0f000000 0801 1001 1a09 08818080f807 10a946'));
    if (!rep.ok || rep.msgid !== MsgId.reportRequest) throw new Error('report vector did not parse');
    expect([rep.body.modid, rep.body.cmdid, rep.body.retcode, rep.body.host?.ip, rep.body.host?.port, rep.body.latency_us]).to.deep.equal([1, 1, 0, 2130706433, 9001, 0]);
    const gr = parseFrame(hex('07000000 04000000 0801 1001'));
    expect(gr.ok && gr.msgid === MsgId.getRouteRequest && [gr.body.modid, gr.body.cmdid]).to.deep.equal([1, 1]);
    const reply = parseReply(hex('05000000 11000000 0807 1001 1801 2a09 08838080f807 10a946'));
    expect(reply?.msgid).to.equal(5);
    expect(reply && reply.msgid === 5 && [reply.body.seq, reply.body.retcode, reply.body.host?.ip, reply.body.host?.port]).to.deep.equal([7, 0, 2130706435, 9001]);
    const unknown = parseReply(hex('05000000 08000000 0807 100b 1801 2003'));
    expect(unknown && unknown.msgid === 5 && [unknown.body.modid, unknown.body.retcode]).to.deep.equal([11, 3]);
  });

  it('sidecar wire - addresses are int32 in Lars byte order, negative from 128.0.0.0', () => {
    expect(ipToInt('127.0.0.1')).to.equal(2130706433);
    expect(ipToInt('128.0.0.0')).to.equal(-2147483648);
    expect(ipToInt('255.255.255.255')).to.equal(-1);
    expect(ipToInt('10.0.0.1')).to.equal(0x0a000001);
    expect(intToIp(-1062731519)).to.equal('192.168.1.1');
    fc.assert(
      fc.property(fc.ipV4(), (ip) => intToIp(ipToInt(ip)) === ip.split('.').map(Number).join('.')),
      { numRuns: 500 },
    );
    // a negative address travels as a 10-byte varint and comes back the same
    const d = encodeReportRequest({ modid: 1, cmdid: 2, host: { ip: ipToInt('200.1.2.3'), port: 80 }, retcode: 1 });
    const f = parseFrame(d);
    expect(f.ok && f.msgid === MsgId.reportRequest && intToIp(f.body.host!.ip)).to.equal('200.1.2.3');
  });

  it('sidecar wire - every kind of bad datagram is classified, never thrown', () => {
    const good = hex('04000000 06000000 0807 1001 1801');
    const cases: Array<[Buffer, string]> = [
      [Buffer.alloc(0), BadDatagram.short],
      [hex('040000000600'), BadDatagram.short],
      [header(4, -1), BadDatagram.negativeLength],
      [Buffer.concat([header(4, MAX_BODY_BYTES + 1), Buffer.alloc(16)]), BadDatagram.oversize],
      [good.subarray(0, good.length - 1), BadDatagram.lengthMismatch],
      [Buffer.concat([good, hex('00')]), BadDatagram.lengthMismatch],
      [Buffer.concat([header(99, 2), hex('0801')]), BadDatagram.unknownMsgid],
      [Buffer.concat([header(5, 2), hex('0801')]), BadDatagram.unknownMsgid],
      [Buffer.concat([header(4, 1), hex('08')]), BadDatagram.malformed],
      [Buffer.concat([header(6, 3), hex('1a0508')]), BadDatagram.malformed],
    ];
    for (const [d, kind] of cases) {
      const f = parseFrame(d);
      expect(f.ok ? 'ok' : f.kind, d.toString('hex')).to.equal(kind);
    }
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 80 }), (bytes) => {
        parseFrame(Buffer.from(bytes));
        return true;
      }),
      { numRuns: 2000 },
    );
    // a well-formed header in front of random bytes: a request or a counted kind, never a throw
    fc.assert(
      fc.property(fc.constantFrom(4, 6, 7), fc.uint8Array({ maxLength: 64 }), (msgid, body) => {
        const f = parseFrame(Buffer.concat([header(msgid, body.length), Buffer.from(body)]));
        return f.ok || f.kind === BadDatagram.malformed;
      }),
      { numRuns: 2000 },
    );
  });

  it('sidecar wire - posted reports are validated with the field named', () => {
    expect(validateReport({ modid: 1, cmdid: 2, ip: '10.0.0.1', port: 80, retcode: 0, latency_ms: 3.5 }, 'report')).to.deep.equal({ modid: 1, cmdid: 2, ip: '10.0.0.1', port: 80, retcode: 0, latency_ms: 3.5 });
    const bad: Array<[unknown, RegExp]> = [
      [[], /report must be an object/],
      [{ modid: -1, cmdid: 2, ip: '10.0.0.1', port: 80, retcode: 0 }, /report\.modid must be an integer/],
      [{ modid: 1, cmdid: 2, ip: '10.0.0.300', port: 80, retcode: 0 }, /report\.ip must be an IPv4/],
      [{ modid: 1, cmdid: 2, ip: '10.0.0.1', port: 0, retcode: 0 }, /report\.port must be an integer 1\.\.65535/],
      [{ modid: 1, cmdid: 2, ip: '10.0.0.1', port: 80 }, /report\.retcode must be an integer/],
      [{ modid: 1, cmdid: 2, ip: '10.0.0.1', port: 80, retcode: 0, latency_ms: -1 }, /report\.latency_ms must be a number/],
      [{ modid: 1, cmdid: 2, ip: '10.0.0.1', port: 80, retcode: 0, extra: 1 }, /report\.extra is not a report field/],
    ];
    for (const [r, msg] of bad) expect(() => validateReport(r, 'report')).to.throw(msg);
  });
});
