import { expect } from 'chai';
import fc from 'fast-check';
import { readFileSync, readdirSync } from 'node:fs';
import { jsonSchemaFiles } from '../../schemas/json-schema.ts';
import { validateRegistryEntry, validateReportBatch, validateRouteEvent, validateRouteState, type Validated } from '../../schemas/messages.ts';
import { validateCheckpointRecord, validateLeaseRecord, validateMemberRecord } from '../../schemas/records.ts';
import { validatePostedReport } from '../../schemas/posted-report.ts';
import {
  registryEntry,
  registryEntryMutations,
  reportBatch,
  reportBatchMutations,
  routeEvent,
  routeEventMutations,
  routeState,
  routeStateMutations,
  type Mutation,
} from './contract-arbitraries.ts';

const SCHEMAS_DIR = new URL('../../schemas/', import.meta.url);

type Json = Record<string, unknown>;

/**
 * A small JSON Schema (draft-07) checker, covering exactly the keywords the
 * contract's files use; an unknown keyword fails loudly, so the files cannot
 * grow a rule this check would silently skip. Strings are measured in code
 * points as JSON Schema says; non-finite numbers are not JSON numbers.
 */
function jsonSchemaAccepts(schema: Json, x: unknown): boolean {
  for (const [k, s] of Object.entries(schema)) {
    switch (k) {
      case '$schema':
      case '$id':
      case 'title':
      case 'description':
        break;
      case 'type': {
        const ok =
          s === 'object' ? typeof x === 'object' && x !== null && !Array.isArray(x)
          : s === 'array' ? Array.isArray(x)
          : s === 'string' ? typeof x === 'string'
          : s === 'number' ? typeof x === 'number' && Number.isFinite(x)
          : s === 'integer' ? typeof x === 'number' && Number.isInteger(x)
          : s === 'boolean' ? typeof x === 'boolean'
          : s === 'null' ? x === null
          : undefined;
        if (ok === undefined) throw new Error(`type ${String(s)}`);
        if (!ok) return false;
        break;
      }
      case 'const':
        if (x !== s) return false;
        break;
      case 'anyOf':
        if (!(s as Json[]).some((v) => jsonSchemaAccepts(v, x))) return false;
        break;
      case 'required':
        if (typeof x === 'object' && x !== null && !Array.isArray(x) && !(s as string[]).every((p) => Object.hasOwn(x, p))) return false;
        break;
      case 'properties':
      case 'patternProperties':
      case 'additionalProperties':
        if (typeof x === 'object' && x !== null && !Array.isArray(x) && !checkProperties(schema, x as Json)) return false;
        break;
      case 'items':
        if (Array.isArray(x)) {
          if (Array.isArray(s)) {
            if (!(s as Json[]).every((v, i) => i >= x.length || jsonSchemaAccepts(v, x[i]))) return false;
            if (schema['additionalItems'] === false && x.length > s.length) return false;
          } else if (!x.every((e) => jsonSchemaAccepts(s as Json, e))) return false;
        }
        break;
      case 'additionalItems':
        if (s !== false) throw new Error('additionalItems other than false');
        break;
      case 'minItems':
        if (Array.isArray(x) && x.length < (s as number)) return false;
        break;
      case 'maxItems':
        if (Array.isArray(x) && x.length > (s as number)) return false;
        break;
      case 'minimum':
        if (typeof x === 'number' && !(x >= (s as number))) return false;
        break;
      case 'maximum':
        if (typeof x === 'number' && !(x <= (s as number))) return false;
        break;
      case 'minLength':
        if (typeof x === 'string' && [...x].length < (s as number)) return false;
        break;
      case 'maxLength':
        if (typeof x === 'string' && [...x].length > (s as number)) return false;
        break;
      case 'pattern':
        if (typeof x === 'string' && !new RegExp(s as string, 'u').test(x)) return false;
        break;
      default:
        throw new Error(`JSON Schema keyword ${k} is not covered by this check`);
    }
  }
  return true;
}

function checkProperties(schema: Json, o: Json): boolean {
  const props = (schema['properties'] ?? {}) as Record<string, Json>;
  const patterns = Object.entries((schema['patternProperties'] ?? {}) as Record<string, Json>);
  const extra = schema['additionalProperties'] as Json | undefined;
  for (const [k, v] of Object.entries(o)) {
    const p = props[k];
    if (p !== undefined) {
      if (!jsonSchemaAccepts(p, v)) return false;
      continue;
    }
    let matched = false;
    for (const [re, ps] of patterns) {
      if (!new RegExp(re, 'u').test(k)) continue;
      matched = true;
      if (!jsonSchemaAccepts(ps, v)) return false;
    }
    if (!matched && extra !== undefined && !jsonSchemaAccepts(extra, v)) return false;
  }
  return true;
}

function committed(file: string): Json {
  return JSON.parse(readFileSync(new URL(file, SCHEMAS_DIR), 'utf8')) as Json;
}

interface Case {
  file: string;
  arb: fc.Arbitrary<Record<string, unknown>>;
  validate: (m: unknown) => Validated<unknown>;
  mutations: Mutation[];
}

const CASES: Case[] = [
  { file: 'report-batch.schema.json', arb: reportBatch, validate: validateReportBatch, mutations: reportBatchMutations },
  { file: 'route-state.schema.json', arb: routeState, validate: validateRouteState, mutations: routeStateMutations },
  { file: 'route-event.schema.json', arb: routeEvent, validate: validateRouteEvent, mutations: routeEventMutations },
  { file: 'registry-entry.schema.json', arb: registryEntry, validate: validateRegistryEntry, mutations: registryEntryMutations },
];

describe('contract - one definition', () => {
  it('contract - the committed .schema.json files are what the TypeBox source generates (npm run schemas)', () => {
    const rendered = jsonSchemaFiles();
    const onDisk = readdirSync(SCHEMAS_DIR).filter((f) => f.endsWith('.schema.json')).sort();
    expect(onDisk, 'schema files in schemas/').to.deep.equal(Object.keys(rendered).sort());
    for (const [file, text] of Object.entries(rendered)) {
      expect(readFileSync(new URL(file, SCHEMAS_DIR), 'utf8'), `${file} is stale: run npm run schemas`).to.equal(text);
    }
  });

  it('contract - the JSON Schema files accept the documented example and refuse broken ones', () => {
    const example = JSON.parse(
      '{"v":1,"sender":"agent-7","modid":1,"cmdid":1,"ts":1764115200000,"hosts":[["10.0.0.1",8080],["10.0.0.2",8080]],"reports":[[0,0,4.2,0],[1,1,30.5,2]]}',
    ) as Json;
    const s = committed('report-batch.schema.json');
    expect(jsonSchemaAccepts(s, example)).to.equal(true);
    expect(jsonSchemaAccepts(s, { ...example, zone: null }), 'nil zone').to.equal(true);
    expect(jsonSchemaAccepts(s, { ...example, extra: { any: 1 } }), 'unknown keys are ignored').to.equal(true);
    expect(jsonSchemaAccepts(s, { ...example, utilization: [[0, 0.62], [1, 0.35]] }), 'the documented utilization').to.equal(true);
    expect(jsonSchemaAccepts(s, { ...example, utilization: [[0, 1.5]] }), 'utilization over 1').to.equal(false);
    expect(jsonSchemaAccepts(s, { ...example, v: 2 })).to.equal(false);
    expect(jsonSchemaAccepts(s, { ...example, reports: [[0, 0, 4.2]] })).to.equal(false);
    expect(jsonSchemaAccepts(s, { ...example, hosts: [['10.0.0.1', 8080, 1]] })).to.equal(false);
    expect(jsonSchemaAccepts(s, { ...example, ts: 8.64e15 + 1024 })).to.equal(false);
    const ev = { v: 1, sender: 'n', modid: 1, cmdid: 1, ts: 1, ip: '10.0.0.1', port: 80, from: 'healthy', to: 'overloaded', reason: 'error_rate', version: 2, figures: { err_rate: 0.2 } };
    expect(jsonSchemaAccepts(committed('route-event.schema.json'), ev)).to.equal(true);
    expect(jsonSchemaAccepts(committed('route-event.schema.json'), { ...ev, version: 0 })).to.equal(false);
  });

  for (const c of CASES) {
    const name = c.file.replace('.schema.json', '');

    it(`contract - ${name}: generated valid messages pass the validator and the committed JSON Schema`, () => {
      const schema = committed(c.file);
      fc.assert(
        fc.property(c.arb, (m) => {
          const v = c.validate(m);
          expect(v.ok, v.ok ? '' : `${v.kind} ${v.detail}`).to.equal(true);
          expect(jsonSchemaAccepts(schema, m), 'JSON Schema').to.equal(true);
        }),
        { numRuns: 300 },
      );
    });

    it(`contract - ${name}: every broken rule is refused with its reject kind, by the validator and the JSON Schema`, () => {
      const schema = committed(c.file);
      fc.assert(
        fc.property(c.arb, fc.constantFrom(...c.mutations), fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true }), (m, mu, at) => {
          const bad = mu.apply(m, at);
          const v = c.validate(bad);
          expect(v.ok, mu.name).to.equal(false);
          if (!v.ok) {
            expect(v.kind, `${mu.name}: ${v.detail}`).to.equal(mu.kind);
            expect(v.detail, mu.name).to.be.a('string').and.not.equal('');
          }
          // The rules only code can check are the ones the JSON files leave out.
          expect(jsonSchemaAccepts(schema, bad), `JSON Schema on ${mu.name}`).to.equal(mu.codeOnly === true);
        }),
        { numRuns: Math.max(400, c.mutations.length * 8) },
      );
    });
  }

  it('contract - each mutation is exercised at least once against a fixed sample', () => {
    // The property runs pick mutations at random; this pins every one of them.
    for (const c of CASES) {
      const [sample] = fc.sample(c.arb, { numRuns: 1, seed: 7 });
      for (const mu of c.mutations) {
        const v = c.validate(mu.apply(sample!, 0.5));
        expect(v.ok, `${c.file} ${mu.name}`).to.equal(false);
        if (!v.ok) expect(v.kind, `${c.file} ${mu.name}: ${v.detail}`).to.equal(mu.kind);
      }
    }
  });

  it('contract - the posted report and the stored records: their JSON Schema files accept what their validators accept and refuse what they refuse', () => {
    const report = { modid: 1, cmdid: 2, ip: '10.0.0.1', port: 80, retcode: 0, latency_ms: 1.5, utilization: 0.5 };
    const lease = { v: 1, node: 'n1', ts: 5, inc: 'ab' };
    const member = { v: 1, node: 'n1', started: 1, ts: 2, partitions: [0, 3], leaving: true, leaseMs: 2000, heartbeatMs: 500, ingest: { reports: 5, batches: 1, pending: 0, reportsPerSec: 2, batchesPerSec: 1 } };
    const packed = { v: 1, profile: 'lars', params: { idle_timeout: 2 }, hosts: { keys: ['ip', 'port'], rows: [['10.0.0.1', 80], ['10.0.0.2', null]] } };
    const cases: Array<[string, (m: unknown) => boolean, Json, Json[]]> = [
      ['posted-report', (m) => validatePostedReport(m, 'report').ok, report, [{ ...report, port: 0 }, { ...report, utilization: 2 }, { ...report, ip: '1.2.3' }, { modid: 1 }]],
      ['lease-record', (m) => validateLeaseRecord(m).ok, lease, [{ ...lease, v: 2 }, { ...lease, node: '' }, { v: 1, node: 'n1' }]],
      ['member-record', (m) => validateMemberRecord(m).ok, member, [{ ...member, partitions: [1.5] }, { ...member, leaving: 'yes' }, { ...member, node: 'x'.repeat(257) }]],
      ['checkpoint-record-v1', (m) => validateCheckpointRecord(m).ok, { v: 1, checkpoint: { v: 1 }, ts: 1, rev: 0 }, [{ v: 1, checkpoint: 'x', ts: 1 }, { v: 1, checkpoint: {} }]],
      ['checkpoint-record-v2', (m) => validateCheckpointRecord(m).ok, { v: 2, checkpoint: packed, ts: 1, rev: 4 }, [{ v: 2, checkpoint: { ...packed, profile: 'x' }, ts: 1 }, { v: 2, checkpoint: { ...packed, params: { a: 'x' } }, ts: 1 }, { v: 2, checkpoint: { ...packed, hosts: [] }, ts: 1 }]],
    ];
    for (const [base, validate, good, bads] of cases) {
      const schema = committed(`${base}.schema.json`);
      expect(validate(good), `${base}: validator, valid sample`).to.equal(true);
      expect(jsonSchemaAccepts(schema, good), `${base}: JSON Schema, valid sample`).to.equal(true);
      for (const bad of bads) {
        expect(validate(bad), `${base}: validator, ${JSON.stringify(bad)}`).to.equal(false);
        expect(jsonSchemaAccepts(schema, bad), `${base}: JSON Schema, ${JSON.stringify(bad)}`).to.equal(false);
      }
    }
  });

  it('contract - a rejection names the field path', () => {
    const b = fc.sample(reportBatch, { numRuns: 1, seed: 3 })[0]!;
    const reports = b['reports'] as unknown[][];
    reports[0]![2] = -1;
    const v = validateReportBatch(b);
    expect(v.ok).to.equal(false);
    if (!v.ok) expect(v.detail).to.match(/^reports\[0\]\[2\]: /);
    const w = validateRouteState({ v: 1, sender: 'n', modid: 1, cmdid: 1, version: 1, ts: 1, profile: 'lars', panic: false, removed: false, probe_num: 1, hosts: [{ ip: '10.0.0.1', port: 80, weight: 0, state: 'healthy', reason: 'registered', since: 1, pick_weight: 0 }] });
    expect(w.ok).to.equal(false);
    if (!w.ok) expect(w.detail).to.match(/^hosts\[0\]\.weight: /);
  });
});
