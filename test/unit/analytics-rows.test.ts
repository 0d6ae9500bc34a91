import { expect } from 'chai';
import { FEATURES_18_16, featuresFor, parseVersion } from '../../schemas/clickhouse/features.ts';
import { eventColumns, reportColumns } from '../../schemas/clickhouse/migrations.ts';
import { escapeTsv, eventLine, floatText, ingestLine, ipv4ToUint32, quarantineLine, reportSpan, uint32ToIpv4 } from '../../src/analytics/rows.ts';
import { reportBatch, routeEvent } from '../helpers/analytics-fixtures.ts';

const MODERN = featuresFor(parseVersion('26.7.2.1')!);

describe('analytics rows', () => {
  const batch = reportBatch({
    modid: 7,
    cmdid: 8,
    ts: 1_795_000_000_000,
    sender: 'svc\ta',
    zone: 'z1',
    hosts: [
      ['10.0.0.1', 80],
      ['192.168.255.254', 65535],
    ],
    reports: [
      [0, 0, 1.5, 0],
      [1, -1, 250, 999],
    ],
  });

  it('analytics rows - escapes tabs, newlines and backslashes for TabSeparated', () => {
    expect(escapeTsv('plain')).to.equal('plain');
    expect(escapeTsv('a\tb\nc\\d\re')).to.equal('a\\tb\\nc\\\\d\\re');
  });

  it('analytics rows - converts IPv4 both ways', () => {
    expect(ipv4ToUint32('10.0.0.1')).to.equal(167772161);
    expect(ipv4ToUint32('255.255.255.255')).to.equal(4294967295);
    expect(uint32ToIpv4(3232301054)).to.equal('192.168.255.254');
  });

  it('analytics rows - one ingest row per batch, hosts as IPv4 text on modern servers', () => {
    expect(ingestLine(batch, 42, MODERN)).to.equal(
      "1795000000000\t7\t8\tsvc\\ta\tz1\t42\t['10.0.0.1','192.168.255.254']\t[80,65535]\t[0,1]\t[0,-1]\t[1.5,250]\t[0,999]\t[]\t[]\t[]\n",
    );
  });

  it('analytics rows - hosts as numbers on 18.16, no zone when unknown', () => {
    const b = { ...batch, zone: undefined };
    expect(ingestLine(b, 1, FEATURES_18_16)).to.equal(
      '1795000000000\t7\t8\tsvc\\ta\t\t1\t[167772161,3232301054]\t[80,65535]\t[0,1]\t[0,-1]\t[1.5,250]\t[0,999]\t[]\t[]\t[]\n',
    );
  });

  it('analytics rows - leaves out the reports of days already stored', () => {
    const day0 = Math.floor(batch.ts / 86_400_000);
    const midnight = (day0 + 1) * 86_400_000;
    const b = { ...batch, ts: midnight - 500, reports: batch.reports };
    expect(ingestLine(b, 1, MODERN, new Set([day0]))).to.contain('\t[1]\t[-1]\t[250]\t[999]\t[]\t[]\t[]\n');
    expect(ingestLine(b, 1, MODERN, new Set([day0, day0 + 1]))).to.equal('');
    expect(reportSpan(b)).to.deep.equal({ modid: 7, cmdid: 8, minMs: midnight - 500, maxMs: midnight + 499 });
  });

  it('analytics rows - attempt marks in their three columns, following their reports when days are left out', () => {
    const day0 = Math.floor(batch.ts / 86_400_000);
    const midnight = (day0 + 1) * 86_400_000;
    const b = { ...batch, ts: midnight - 500, attempts: [[1, 2, 1]] as Array<[number, number, 0 | 1 | 2]> };
    expect(ingestLine(b, 1, MODERN)).to.contain('\t[0,999]\t[1]\t[2]\t[1]\n');
    expect(ingestLine(b, 1, MODERN, new Set([day0]))).to.contain('\t[1]\t[-1]\t[250]\t[999]\t[0]\t[2]\t[1]\n');
    expect(ingestLine({ ...b, attempts: [[0, 3, 2]] }, 1, MODERN, new Set([day0]))).to.contain('\t[999]\t[]\t[]\t[]\n');
  });

  it('analytics rows - route events: known figures in columns, others in arrays, absent ones NULL', () => {
    const e = routeEvent({
      modid: 7,
      cmdid: 8,
      ts: 1_795_000_000_123,
      ip: '10.0.0.2',
      port: 80,
      from: 'healthy',
      to: 'overloaded',
      reason: 'consecutive_errors',
      version: 9,
      figures: { err_rate: 0.5, consecutive_errors: 15, "it's": 2 },
    });
    const modern = eventLine(e, 5, MODERN).slice(0, -1).split('\t');
    expect(modern.length).to.equal(eventColumns(MODERN).length);
    expect(modern.slice(0, 10)).to.deep.equal(['1795000000123', '7', '8', '10.0.0.2', '80', 'healthy', 'overloaded', 'consecutive_errors', '9', 'node-1']);
    expect(modern[10]).to.equal('0.5');
    expect(modern[11]).to.equal('\\N');
    expect(modern[13]).to.equal('15');
    expect(modern.slice(-4)).to.deep.equal(["['it\\\\'s']", '[2]', '5', '']);
    // an operator's action says who asked (the last column, `actor`)
    expect(eventLine({ ...e, reason: 'admin_drain', by: 'console:alice' }, 5, MODERN).slice(0, -1).split('\t').at(-1)).to.equal('console:alice');
    const old = eventLine(e, 5, FEATURES_18_16).slice(0, -1).split('\t');
    expect(old.length).to.equal(eventColumns(FEATURES_18_16).length);
    expect(old.slice(0, 4)).to.deep.equal(['1795000000', '1795000000123', '7', '8']);
    expect(old[4]).to.equal('167772162');
  });

  it('analytics rows - floats ClickHouse reads back, including nan and inf', () => {
    expect([floatText(1.25), floatText(NaN), floatText(Infinity), floatText(-Infinity)]).to.deep.equal(['1.25', 'nan', 'inf', '-inf']);
  });

  it('analytics rows - quarantine rows carry the raw bytes in base64', () => {
    const line = quarantineLine({ at: 1_795_000_000_999, stream: 'S', seq: 3, subject: 'a.b', kind: 'malformed', detail: 'bad\nthing', sink: 'w1', payload: new Uint8Array([1, 2, 255]) });
    expect(line).to.equal('1795000000\tS\t3\ta.b\tmalformed\tbad\\nthing\tw1\tAQL/\n');
  });

  it('analytics rows - column lists per version', () => {
    expect(reportColumns(MODERN)).to.deep.equal(['time', 'modid', 'cmdid', 'ip', 'port', 'retcode', 'latency_ms', 'caller', 'zone', 'seq']);
    expect(reportColumns(FEATURES_18_16)[1]).to.equal('ts_ms');
  });
});
