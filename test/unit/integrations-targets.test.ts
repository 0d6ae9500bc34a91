import { expect } from 'chai';
import { parseLarsUrl } from '../../src/integrations/http.ts';
import { parseGrpcTarget } from '../../src/integrations/grpc.ts';

describe('integrations/targets', () => {
  it('targets - lars://<modid>.<cmdid>/<path> keeps the path and query', () => {
    expect(parseLarsUrl('lars://1.2/users/7?full=1')).to.deep.equal({ modid: 1, cmdid: 2, path: '/users/7?full=1' });
    expect(parseLarsUrl('lars://1.2')).to.deep.equal({ modid: 1, cmdid: 2, path: '/' });
    expect(parseLarsUrl('lars://4294967295.0/')).to.deep.equal({ modid: 4294967295, cmdid: 0, path: '/' });
  });

  it('targets - anything else is a RangeError', () => {
    for (const bad of ['http://1.2/', 'lars://1/', 'lars://a.b/', 'lars://1.2.3/', 'lars://4294967296.1/', 'lars://-1.2/', 'not a url', 'lars://1.2:80/']) {
      expect(() => parseLarsUrl(bad), bad).to.throw(RangeError);
    }
  });

  it('targets - lars:///<modid>/<cmdid> for gRPC', () => {
    expect(parseGrpcTarget('/1/2')).to.deep.equal({ modid: 1, cmdid: 2 });
    expect(parseGrpcTarget('1/2')).to.deep.equal({ modid: 1, cmdid: 2 });
    expect(parseGrpcTarget('/1/2/')).to.deep.equal({ modid: 1, cmdid: 2 });
    for (const bad of ['/1', '/a/2', '/1/99999999999', '/1/2/3', '']) expect(parseGrpcTarget(bad), bad).to.equal(undefined);
  });
});
