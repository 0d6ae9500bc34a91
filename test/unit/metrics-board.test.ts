import { expect } from 'chai';
import type { RouteState } from '../../schemas/messages.ts';
import { RouteBoard, OTHER_ROUTES, httpSettings, startMetricsServer, createRegistry, counterFrom, type Readiness } from '../../src/cli/metrics.ts';
import { parsePrometheusText, sampleValue, MetricsFormatError } from '../helpers/metrics-parse.ts';
import { UsageError } from '../../src/lib/errors.ts';

type HostSpec = [ip: string, state: 'healthy' | 'overloaded' | 'probing' | 'draining', since: number];

function route(modid: number, cmdid: number, hs: HostSpec[], extra: Partial<RouteState> = {}): RouteState {
  return {
    v: 1,
    sender: 'n1',
    modid,
    cmdid,
    version: 1,
    ts: 0,
    profile: 'default',
    panic: false,
    removed: false,
    probe_num: 0,
    hosts: hs.map(([ip, state, since]) => ({ ip, port: 80, weight: 100, state, reason: 'registered', since, pick_weight: state === 'healthy' ? 100 : 0 })),
    ...extra,
  } as RouteState;
}

describe('metrics - route board (bounded per-route series)', () => {
  it('metrics - an ejected host keeps its ejection time across overloaded and probing, and loses it when healthy', () => {
    const b = new RouteBoard(5);
    b.apply(route(1, 1, [['10.0.0.1', 'overloaded', 1_000], ['10.0.0.2', 'healthy', 0]]));
    b.apply(route(1, 1, [['10.0.0.1', 'probing', 31_000], ['10.0.0.2', 'healthy', 0]]));
    b.apply(route(1, 1, [['10.0.0.1', 'overloaded', 32_000], ['10.0.0.2', 'healthy', 0]]));
    expect(b.rows(61_000)).to.deep.equal([{ route: '1.1', ejected: 1, panic: 0, longestEjectedS: 60 }]);
    b.apply(route(1, 1, [['10.0.0.1', 'healthy', 40_000], ['10.0.0.2', 'healthy', 0]]));
    expect(b.rows(61_000)).to.deep.equal([]);
    b.apply(route(1, 1, [['10.0.0.1', 'overloaded', 50_000], ['10.0.0.2', 'healthy', 0]]));
    expect(b.rows(61_000)[0]!.longestEjectedS).to.equal(11);
    expect(b.hostsByState()).to.deep.equal({ healthy: 1, overloaded: 1, probing: 0, draining: 0 });
  });

  it('metrics - the worst routes are named (panic first, then ejected hosts) and the rest summed under _other', () => {
    const b = new RouteBoard(2);
    b.apply(route(1, 1, [['a', 'overloaded', 0]]));
    b.apply(route(1, 2, [['a', 'overloaded', 0], ['b', 'probing', 5_000], ['c', 'healthy', 0]]));
    b.apply(route(1, 3, [['a', 'healthy', 0]], { panic: true }));
    b.apply(route(1, 4, [['a', 'overloaded', 9_000]], { panic: true }));
    b.apply(route(1, 5, [['a', 'healthy', 0]]));
    const rows = b.rows(10_000);
    expect(rows.map((r) => r.route)).to.deep.equal(['1.4', '1.3', OTHER_ROUTES]);
    expect(rows[2]).to.deep.equal({ route: OTHER_ROUTES, ejected: 3, panic: 0, longestEjectedS: 10 });
    expect(b.routesInPanic()).to.equal(2);
  });

  it('metrics - removed routes and routes of a dropped partition are forgotten', () => {
    const b = new RouteBoard(5, (_m, c) => c % 2);
    b.apply(route(1, 1, [['a', 'overloaded', 0]]));
    b.apply(route(1, 2, [['a', 'overloaded', 0]]));
    b.apply(route(1, 3, [['a', 'overloaded', 0]]));
    b.dropPartition(1);
    expect(b.rows(0).map((r) => r.route)).to.deep.equal(['1.2']);
    b.apply(route(1, 2, [], { removed: true }));
    expect(b.size).to.equal(0);
  });
});

describe('metrics - --http and --metrics flags', () => {
  it('metrics - flags: absent is off, a port turns health and metrics on, --metrics off keeps health only', () => {
    expect(httpSettings({})).to.equal(undefined);
    expect(httpSettings({ http: '9464' })).to.deep.equal({ port: 9464, metrics: true });
    expect(httpSettings({ http: '0', metrics: 'off' })).to.deep.equal({ port: 0, metrics: false });
    expect(() => httpSettings({ http: 'x' })).to.throw(UsageError, /--http takes a port number/);
    expect(() => httpSettings({ http: '70000' })).to.throw(UsageError);
    expect(() => httpSettings({ metrics: 'on' })).to.throw(UsageError, /--metrics needs --http/);
    expect(() => httpSettings({ http: '1', metrics: 'yes' })).to.throw(UsageError, /on or off/);
  });
});

describe('metrics - Prometheus text format reader', () => {
  it('metrics - reads families, labels with escapes, histograms and special values', () => {
    const f = parsePrometheusText(
      [
        '# HELP a_total A counter',
        '# TYPE a_total counter',
        'a_total{kind="x\\"y",path="c:\\\\d"} 3',
        '# TYPE h histogram',
        'h_bucket{le="0.1"} 1',
        'h_bucket{le="+Inf"} 2',
        'h_sum 0.3',
        'h_count 2',
        '# TYPE g gauge',
        'g Nan',
        'g{x="1"} -Inf 1700000000000',
        '',
      ].join('\n'),
    );
    expect(f.get('a_total')!.samples[0]!.labels).to.deep.equal({ kind: 'x"y', path: 'c:\\d' });
    expect(sampleValue(f, 'h', { le: '+Inf' }, 'h_bucket')).to.equal(2);
    expect(sampleValue(f, 'h', {}, 'h_count')).to.equal(2);
    expect(Number.isNaN(sampleValue(f, 'g'))).to.equal(true);
    expect(sampleValue(f, 'g', { x: '1' })).to.equal(-Infinity);
  });

  it('metrics - refuses samples without a TYPE, bad names, unclosed labels and bad values', () => {
    for (const bad of ['x 1', '# TYPE x gauge\nx{a="1} 1', '# TYPE x gauge\nx{1a="1"} 1', '# TYPE x gauge\nx one', '# TYPE x nonsense', '# TYPE x gauge\nx{a="1"}1']) {
      expect(() => parsePrometheusText(bad), bad).to.throw(MetricsFormatError);
    }
  });
});

describe('metrics - HTTP endpoints', () => {
  it('metrics - /metrics, /healthz, /readyz with its reason, 404 and 405', async () => {
    const registry = createRegistry({ defaultMetrics: false, labels: { node: 'n1' } });
    let n = 0;
    counterFrom(registry, { name: 'lars_test_total', help: 'A test counter', read: () => n });
    let ready: Readiness = { ready: false, reason: 'routes loading' };
    const s = await startMetricsServer({ port: 0, host: '127.0.0.1', registry, ready: () => ready });
    try {
      const url = (p: string) => `http://127.0.0.1:${s.port}${p}`;
      n = 5;
      const m = parsePrometheusText(await (await fetch(url('/metrics'))).text());
      expect(sampleValue(m, 'lars_test_total', { node: 'n1' })).to.equal(5);
      expect((await fetch(url('/healthz'))).status).to.equal(200);
      const r1 = await fetch(url('/readyz'));
      expect(r1.status).to.equal(503);
      expect(await r1.json()).to.deep.equal({ status: 'not ready', reason: 'routes loading' });
      ready = { ready: true };
      expect((await fetch(url('/readyz'))).status).to.equal(200);
      expect((await fetch(url('/nope'))).status).to.equal(404);
      expect((await fetch(url('/metrics'), { method: 'POST' })).status).to.equal(405);
    } finally {
      await s.close();
    }
  });
});
