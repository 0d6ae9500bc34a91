/**
 * The Envoy bootstrap in docs/xds.md, checked against Envoy's own messages
 * (the .proto files @grpc/grpc-js-xds ships): every key a field of its
 * message, every `@type` a known message, every value of its field's kind.
 * Envoy itself cannot be installed here: this is what is checked of it.
 */
import { expect } from 'chai';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import protobuf from 'protobufjs';
import { parse } from 'yaml';
import { protoDir, xdsProtos } from '../../src/xds/protos.ts';

function envoyYaml(): unknown {
  const doc = readFileSync(new URL('../../docs/xds.md', import.meta.url), 'utf8');
  const m = /```yaml\n([\s\S]*?)```/.exec(doc);
  if (!m) throw new Error('docs/xds.md has no yaml block');
  return parse(m[1]!);
}

function bootstrapType(): protobuf.Type {
  const root = xdsProtos().root;
  const deps = protoDir();
  // the bootstrap and the upstream HTTP options are not among the protos the server loads
  for (const f of ['envoy/config/bootstrap/v3/bootstrap.proto', 'envoy/extensions/upstreams/http/v3/http_protocol_options.proto']) {
    const p = join(deps, 'envoy-api', f);
    try {
      root.loadSync(p, { keepCase: true });
    } catch {
      // already loaded
    }
  }
  root.resolveAll();
  return root.lookupType('envoy.config.bootstrap.v3.Bootstrap');
}

const SCALAR = new Set(['double', 'float', 'int32', 'uint32', 'sint32', 'fixed32', 'sfixed32', 'int64', 'uint64', 'sint64', 'fixed64', 'sfixed64']);
const WRAPPERS = new Set(['google.protobuf.UInt32Value', 'google.protobuf.UInt64Value', 'google.protobuf.Int32Value', 'google.protobuf.Int64Value', 'google.protobuf.DoubleValue', 'google.protobuf.FloatValue']);

/** Problems of `v` as a `type` in proto JSON form (Envoy's YAML). */
function check(type: protobuf.Type, v: unknown, path: string, root: protobuf.Root, out: string[]): void {
  if (type.fullName === '.google.protobuf.Any') {
    const o = v as Record<string, unknown>;
    const url = o['@type'];
    if (typeof url !== 'string') return void out.push(`${path}: Any without @type`);
    let inner: protobuf.Type;
    try {
      inner = root.lookupType(url.slice(url.lastIndexOf('/') + 1));
    } catch {
      return void out.push(`${path}: unknown @type ${url}`);
    }
    const rest = Object.fromEntries(Object.entries(o).filter(([k]) => k !== '@type'));
    return check(inner, rest, path, root, out);
  }
  if (type.fullName === '.google.protobuf.Duration') {
    if (typeof v !== 'string' || !/^\d+(\.\d+)?s$/.test(v)) out.push(`${path}: not a duration`);
    return;
  }
  if (WRAPPERS.has(type.fullName.slice(1))) {
    if (typeof v !== 'number') out.push(`${path}: not a number`);
    return;
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return void out.push(`${path}: not a ${type.name} object`);
  for (const [k, x] of Object.entries(v)) {
    const f = type.fields[k];
    if (!f) {
      out.push(`${path}.${k}: no such field in ${type.fullName}`);
      continue;
    }
    f.resolve();
    if (f.map) {
      if (typeof x !== 'object' || x === null) out.push(`${path}.${k}: not a map`);
      else for (const [mk, mv] of Object.entries(x as Record<string, unknown>)) one(f, mv, `${path}.${k}.${mk}`, root, out);
    } else if (f.repeated) {
      if (!Array.isArray(x)) out.push(`${path}.${k}: not a list`);
      else x.forEach((e, i) => one(f, e, `${path}.${k}[${i}]`, root, out));
    } else one(f, x, `${path}.${k}`, root, out);
  }
}

function one(f: protobuf.Field, v: unknown, path: string, root: protobuf.Root, out: string[]): void {
  const t = f.resolvedType;
  if (t instanceof protobuf.Type) return check(t, v, path, root, out);
  if (t instanceof protobuf.Enum) {
    if (typeof v !== 'string' || t.values[v] === undefined) out.push(`${path}: ${String(v)} is not a value of ${t.name}`);
    return;
  }
  if (f.type === 'string' && typeof v !== 'string') out.push(`${path}: not a string`);
  else if (f.type === 'bool' && typeof v !== 'boolean') out.push(`${path}: not a boolean`);
  else if (SCALAR.has(f.type) && typeof v !== 'number') out.push(`${path}: not a number`);
}

describe('xds docs', () => {
  it('xds docs - the Envoy bootstrap in docs/xds.md names only fields and types of Envoy\'s Bootstrap', function () {
    this.timeout(20_000);
    const t = bootstrapType();
    const problems: string[] = [];
    check(t, envoyYaml(), 'bootstrap', xdsProtos().root, problems);
    expect(problems).to.deep.equal([]);
  });

  it('xds docs - the check finds a wrong field, a wrong @type and a wrong enum value', function () {
    this.timeout(20_000);
    const t = bootstrapType();
    const problems: string[] = [];
    const bad = { node: { idd: 'x' }, dynamic_resources: { ads_config: { api_type: 'GRPCX' } }, static_resources: { listeners: [{ filter_chains: [{ filters: [{ typed_config: { '@type': 'type.googleapis.com/envoy.Nope' } }] }] }] } };
    check(t, bad, 'bootstrap', xdsProtos().root, problems);
    expect(problems.join('\n')).to.match(/idd: no such field/).and.match(/GRPCX is not a value/).and.match(/unknown @type/);
  });
});
