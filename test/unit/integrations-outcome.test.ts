import { expect } from 'chai';
import {
  DEFAULT_FAILURE_POLICY,
  GrpcCode,
  Retcode,
  connectionRetcode,
  grpcRetcode,
  httpRetcode,
  resolveFailurePolicy,
  timeoutRetcode,
} from '../../src/integrations/outcome.ts';

describe('integrations/outcome', () => {
  const d = resolveFailurePolicy();

  it('outcome - documented defaults', () => {
    expect(DEFAULT_FAILURE_POLICY).to.deep.include({ http5xx: true, http429: true, http4xx: false, timeouts: true, connectionErrors: true, slowMs: 0 });
    expect([...DEFAULT_FAILURE_POLICY.grpcCodes].sort((a, b) => a - b)).to.deep.equal([2, 4, 8, 13, 14]);
  });

  it('outcome - HTTP statuses with the defaults: 5xx and 429 fail with their status, other 4xx and 2xx/3xx succeed', () => {
    expect(httpRetcode(d, 200, 5)).to.equal(0);
    expect(httpRetcode(d, 204, 5)).to.equal(0);
    expect(httpRetcode(d, 304, 5)).to.equal(0);
    expect(httpRetcode(d, 404, 5)).to.equal(0);
    expect(httpRetcode(d, 400, 5)).to.equal(0);
    expect(httpRetcode(d, 429, 5)).to.equal(429);
    expect(httpRetcode(d, 500, 5)).to.equal(500);
    expect(httpRetcode(d, 503, 5)).to.equal(503);
    expect(httpRetcode(d, 599, 5)).to.equal(599);
  });

  it('outcome - each HTTP rule can be turned around', () => {
    const p = resolveFailurePolicy({ http5xx: false, http429: false, http4xx: true });
    expect(httpRetcode(p, 503, 5)).to.equal(0);
    expect(httpRetcode(p, 429, 5)).to.equal(0);
    expect(httpRetcode(p, 404, 5)).to.equal(404);
    expect(httpRetcode(p, 200, 5)).to.equal(0);
  });

  it('outcome - gRPC codes: the default set fails, the rest succeed, a chosen set replaces it', () => {
    for (const c of [GrpcCode.UNAVAILABLE, GrpcCode.DEADLINE_EXCEEDED, GrpcCode.RESOURCE_EXHAUSTED, GrpcCode.INTERNAL, GrpcCode.UNKNOWN]) expect(grpcRetcode(d, c, 1)).to.equal(c);
    for (const c of [GrpcCode.OK, GrpcCode.NOT_FOUND, GrpcCode.INVALID_ARGUMENT, GrpcCode.CANCELLED, GrpcCode.PERMISSION_DENIED]) expect(grpcRetcode(d, c, 1)).to.equal(0);
    const p = resolveFailurePolicy({ grpcCodes: [GrpcCode.NOT_FOUND] });
    expect(grpcRetcode(p, GrpcCode.NOT_FOUND, 1)).to.equal(GrpcCode.NOT_FOUND);
    expect(grpcRetcode(p, GrpcCode.UNAVAILABLE, 1)).to.equal(0);
    expect(grpcRetcode(d, 99, 1)).to.equal(0);
  });

  it('outcome - timeouts and connection errors fail by default, with their own retcodes', () => {
    expect(timeoutRetcode(d)).to.equal(Retcode.timeout);
    expect(connectionRetcode(d)).to.equal(Retcode.connection);
    const p = resolveFailurePolicy({ timeouts: false, connectionErrors: false });
    expect(timeoutRetcode(p)).to.equal(0);
    expect(connectionRetcode(p)).to.equal(0);
  });

  it('outcome - the latency bound is off by default; when set, a slower success fails and a failure keeps its code', () => {
    expect(httpRetcode(d, 200, 1e6)).to.equal(0);
    const p = resolveFailurePolicy({ slowMs: 100 });
    expect(httpRetcode(p, 200, 100)).to.equal(0);
    expect(httpRetcode(p, 200, 100.5)).to.equal(Retcode.slow);
    expect(httpRetcode(p, 404, 150)).to.equal(Retcode.slow);
    expect(httpRetcode(p, 500, 150)).to.equal(500);
    expect(grpcRetcode(p, GrpcCode.OK, 150)).to.equal(Retcode.slow);
    expect(grpcRetcode(p, GrpcCode.UNAVAILABLE, 150)).to.equal(GrpcCode.UNAVAILABLE);
  });

  it('outcome - bad policy values are refused', () => {
    expect(() => resolveFailurePolicy({ slowMs: -1 })).to.throw(RangeError);
    expect(() => resolveFailurePolicy({ slowMs: Number.NaN })).to.throw(RangeError);
    expect(() => resolveFailurePolicy({ grpcCodes: [0] })).to.throw(RangeError);
    expect(() => resolveFailurePolicy({ grpcCodes: [17] })).to.throw(RangeError);
  });
});
