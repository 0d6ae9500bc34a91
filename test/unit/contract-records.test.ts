import { expect } from 'chai';
import { encode } from '../../schemas/codec.ts';
import { parseReportMsgId, reportMsgId } from '../../schemas/msg-id.ts';
import { validatePostedBody, validatePostedReport } from '../../schemas/posted-report.ts';
import { decodeCheckpointRecord, decodeHandoverEntry, decodeHandoverPart, decodeLeaseRecord, decodeMemberRecord, decodeSelfRegistration, validateCheckpointRecord, validateLeaseRecord, validateMemberRecord } from '../../schemas/records.ts';
import { RECORD_SCHEMAS } from '../../schemas/cluster-records.ts';
import { jsonSchemaFiles } from '../../schemas/json-schema.ts';
import type { Validated } from '../../schemas/messages.ts';

/** The kind of a rejection, or 'ok'. */
const kind = (v: Validated<unknown>): string => (v.ok ? 'ok' : v.kind);

describe('contract - message id and stored records', () => {
  it('contract - a report message id is sender/instance/seq; the sender may hold slashes, seq is a safe integer from 1', () => {
    expect(reportMsgId('a/b', 'i1', 9)).to.equal('a/b/i1/9');
    expect(parseReportMsgId('a/b/i1/9')).to.deep.equal({ sender: 'a/b', instance: 'i1', seq: 9 });
    expect(parseReportMsgId(reportMsgId('s', 'i', Number.MAX_SAFE_INTEGER))?.seq).to.equal(Number.MAX_SAFE_INTEGER);
    for (const bad of ['s/i/9007199254740992', 's//1', '/i/1', 's/i/', 's/i/1.5', 's/i/-1', 'i/1', '']) expect(parseReportMsgId(bad), bad).to.equal(undefined);
  });

  it('contract - a posted report: the fields of the schema only, each refusal naming its field and what it must be', () => {
    const r = { modid: 1, cmdid: 2, ip: '10.0.0.1', port: 80, retcode: -1, latency_ms: 0, utilization: 1 };
    expect(validatePostedReport(r, 'report')).to.deep.equal({ ok: true, value: r });
    const bad: Array<[unknown, string]> = [
      [null, 'report must be an object {modid, cmdid, ip, port, retcode, latency_ms, utilization}'],
      [{ ...r, zone: 'a' }, 'report.zone is not a report field (modid, cmdid, ip, port, retcode, latency_ms, utilization)'],
      [{ ...r, cmdid: 2 ** 32 }, 'report.cmdid must be an integer 0..4294967295, got 4294967296'],
      [{ ...r, ip: '10.0.0.01' }, 'report.ip must be an IPv4 address a.b.c.d, got "10.0.0.01"'],
      [{ ...r, retcode: 0.5 }, 'report.retcode must be an integer -2147483648..2147483647, got 0.5'],
      [{ ...r, latency_ms: 3_600_001 }, 'report.latency_ms must be a number 0..3600000, got 3600001'],
      [{ ...r, utilization: -0.1 }, 'report.utilization must be a number 0..1, got -0.1'],
      [{ modid: 1 }, 'report.cmdid must be an integer 0..4294967295, got nothing'],
    ];
    for (const [x, detail] of bad) expect(validatePostedReport(x, 'report')).to.deep.equal({ ok: false, detail });
    expect(validatePostedBody({ reports: [r, r] })).to.deep.equal({ ok: true, value: [r, r] });
    expect(validatePostedBody({ reports: [r, { ...r, port: 0 }] })).to.deep.equal({ ok: false, detail: 'reports[1].port must be an integer 1..65535, got 0' });
    expect(validatePostedBody({ reports: new Array(10_001).fill(r) })).to.deep.equal({ ok: false, detail: '10001 reports; post at most 10000 at once' });
  });

  it('contract - a lease record: holder and time; an incarnation that is not a string is left out', () => {
    expect(decodeLeaseRecord(encode({ v: 1, node: 'n1', ts: 5, inc: 'ab' }))).to.deep.equal({ ok: true, value: { v: 1, node: 'n1', ts: 5, inc: 'ab' } });
    expect(validateLeaseRecord({ v: 1, node: 'n1', ts: 5, inc: 7, extra: 1 })).to.deep.equal({ ok: true, value: { v: 1, node: 'n1', ts: 5 } });
    expect(kind(validateLeaseRecord({ v: 2, node: 'n1', ts: 5 }))).to.equal('bad_version');
    expect(kind(validateLeaseRecord({ v: 1, node: '', ts: 5 }))).to.equal('out_of_range');
    expect(kind(validateLeaseRecord({ v: 1, node: 3, ts: 5 }))).to.equal('wrong_type');
    expect(kind(validateLeaseRecord({ v: 1, node: 'n' }))).to.equal('wrong_type');
    expect(kind(validateLeaseRecord([1]))).to.equal('wrong_type');
    expect(kind(decodeLeaseRecord(new Uint8Array([0xc1])))).to.equal('malformed');
  });

  it('contract - a member record: figures that are not valid are left out, the member kept; a bad core field refuses it', () => {
    const ingest = { reports: 5, batches: 1, pending: 0, reportsPerSec: 2, batchesPerSec: 1 };
    const full = { v: 1, node: 'n1', started: 1, ts: 2, partitions: [0, 3], leaving: true, leaseMs: 2000, heartbeatMs: 500, ingest };
    expect(decodeMemberRecord(encode(full))).to.deep.equal({ ok: true, value: full });
    const loose = validateMemberRecord({ ...full, leaving: false, leaseMs: -1, heartbeatMs: 'x', ingest: { ...ingest, pending: Number.NaN } });
    expect(loose).to.deep.equal({ ok: true, value: { v: 1, node: 'n1', started: 1, ts: 2, partitions: [0, 3] } });
    expect(validateMemberRecord({ ...full, ingest: { ...ingest, more: 1 } })).to.deep.equal({ ok: true, value: full });
    expect(kind(validateMemberRecord({ ...full, partitions: [1.5] }))).to.equal('wrong_type');
    expect(kind(validateMemberRecord({ ...full, leaving: 'yes' }))).to.equal('wrong_type');
    expect(kind(validateMemberRecord({ ...full, node: 'x'.repeat(257) }))).to.equal('out_of_range');
    expect(kind(validateMemberRecord({ ...full, v: 0 }))).to.equal('bad_version');
  });

  it('contract - checkpoint records of versions 1 and 2 are read; rows must match the keys; a rev that is not valid is left out', () => {
    const v1 = { v: 1, checkpoint: { v: 1, anything: true }, ts: 10, rev: 3 };
    expect(decodeCheckpointRecord(encode(v1))).to.deep.equal({ ok: true, value: v1 });
    const packed = { v: 1, profile: 'lars', params: { idle_timeout: 2 }, hosts: { keys: ['ip', 'port'], rows: [['10.0.0.1', 80], ['10.0.0.2', null]] } };
    const v2 = { v: 2, checkpoint: packed, ts: 11 };
    expect(validateCheckpointRecord(v2)).to.deep.equal({ ok: true, value: v2 });
    expect(validateCheckpointRecord({ ...v2, rev: -1 })).to.deep.equal({ ok: true, value: v2 });
    expect(validateCheckpointRecord({ ...v2, rev: 2 ** 53 })).to.deep.equal({ ok: true, value: v2 });
    const rows = validateCheckpointRecord({ ...v2, checkpoint: { ...packed, hosts: { keys: ['ip', 'port'], rows: [['10.0.0.1']] } } });
    expect(rows).to.deep.equal({ ok: false, kind: 'out_of_range', detail: 'checkpoint.hosts.rows[0]: 1 values for 2 keys' });
    expect(kind(validateCheckpointRecord({ ...v2, checkpoint: { ...packed, params: { idle_timeout: 'x' } } }))).to.equal('wrong_type');
    expect(kind(validateCheckpointRecord({ ...v2, checkpoint: { ...packed, profile: 'other' } }))).to.equal('out_of_range');
    expect(kind(validateCheckpointRecord({ ...v2, checkpoint: { ...packed, hosts: [] } }))).to.equal('wrong_type');
    expect(kind(validateCheckpointRecord({ ...v1, checkpoint: 'x' }))).to.equal('wrong_type');
    expect(kind(validateCheckpointRecord({ ...v1, v: 3 }))).to.equal('bad_version');
    expect(kind(validateCheckpointRecord({ v: 1, checkpoint: {} }))).to.equal('wrong_type');
  });

  it('contract - a handover entry needs its id and number of parts; a part, its id and [route key, bytes] pairs', () => {
    const entry = { v: 1, id: 'ab', node: 'n', ts: 1, parts: 2, routes: 3 };
    expect(decodeHandoverEntry(encode(entry))).to.deep.equal({ ok: true, value: entry });
    expect(decodeHandoverEntry(encode({ v: 1, id: 'ab', parts: 0 })).ok, 'the informational fields may be absent').to.equal(true);
    expect(kind(decodeHandoverEntry(encode({ ...entry, parts: -1 })))).to.equal('out_of_range');
    expect(kind(decodeHandoverEntry(encode({ ...entry, id: 5 })))).to.equal('wrong_type');
    expect(kind(decodeHandoverEntry(encode({ ...entry, v: 2 })))).to.equal('bad_version');
    const bytes = new Uint8Array([1, 2, 3]);
    const part = decodeHandoverPart(encode({ v: 1, id: 'ab', records: [['1.2', bytes]] }));
    expect(part.ok && part.value.records[0]![0] === '1.2' && [...part.value.records[0]![1]].join() === '1,2,3').to.equal(true);
    expect(kind(decodeHandoverPart(encode({ v: 1, id: 'ab', records: [['1.2', 'x']] })))).to.not.equal('ok');
    expect(kind(decodeHandoverPart(encode({ v: 1, id: 'ab', records: [[1, bytes]] })))).to.not.equal('ok');
    expect(kind(decodeHandoverPart(new Uint8Array([0xc1])))).to.equal('malformed');
  });

  it('contract - a stored self-registration decodes from its bytes, or is malformed', () => {
    const rec = { v: 1, modid: 1, cmdid: 2, ip: '10.0.0.1', port: 80, weight: 100, state: 'up', instance: 'i', ttl_ms: 1000, ts: 0 };
    expect(decodeSelfRegistration(encode(rec))).to.deep.equal({ ok: true, value: rec });
    expect(kind(decodeSelfRegistration(encode({ ...rec, ttl_ms: 10 })))).to.equal('out_of_range');
    expect(kind(decodeSelfRegistration(new Uint8Array([0xc1])))).to.equal('malformed');
  });

  it('contract - every stored record has its JSON Schema file, titled and described', () => {
    const files = jsonSchemaFiles();
    for (const base of Object.keys(RECORD_SCHEMAS)) {
      const doc = JSON.parse(files[`${base}.schema.json`]!) as { title?: string; description?: string; required?: string[] };
      expect(doc.title, base).to.be.a('string');
      expect(doc.description, base).to.match(/KV <prefix>_/);
      expect(doc.required, base).to.include('v');
    }
  });
});
