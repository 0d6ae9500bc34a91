/**
 * The JSON Schema files of the contract, rendered from the TypeBox
 * definition: the messages of contract.ts and the stored records of
 * cluster-records.ts. `npm run schemas` writes them beside this file;
 * a unit test fails when a committed file differs from this rendering.
 *
 * TypeBox emits draft-07 keywords (a tuple is `items: [...]` with
 * `additionalItems: false`), so the files declare draft-07.
 */
import { MESSAGE_SCHEMAS } from './contract.ts';
import { RECORD_SCHEMAS } from './cluster-records.ts';

export const JSON_SCHEMA_DRAFT = 'http://json-schema.org/draft-07/schema#';
const ID_BASE = 'https://lars-nats.example/schemas/v1/';

const FIRST = ['$schema', '$id', 'title', 'description', 'type'];

/**
 * Keywords in a readable order: identity, description and type first, the
 * rest as TypeBox wrote them. Bytes (msgpack bin, TypeBox's Uint8Array) have
 * no JSON Schema type: such a value is described, not typed.
 */
function ordered(x: unknown): unknown {
  if (Array.isArray(x)) return x.map(ordered);
  if (typeof x !== 'object' || x === null) return x;
  const o = x as Record<string, unknown>;
  if (o['type'] === 'Uint8Array') return { description: `bytes (msgpack bin): ${typeof o['description'] === 'string' ? o['description'] : ''}` };
  const out: Record<string, unknown> = {};
  for (const k of FIRST) if (k in o) out[k] = ordered(o[k]);
  for (const [k, v] of Object.entries(o)) if (!(k in out)) out[k] = ordered(v);
  return out;
}

/** `{ 'report-batch.schema.json': '<text>', ... }`, each text ending with a newline. */
export function jsonSchemaFiles(): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [base, schema] of Object.entries({ ...MESSAGE_SCHEMAS, ...RECORD_SCHEMAS })) {
    // JSON text drops TypeBox's symbol keys (Kind, Optional, RejectAs).
    const plain = JSON.parse(JSON.stringify(schema)) as Record<string, unknown>;
    const file = `${base}.schema.json`;
    const doc = { $schema: JSON_SCHEMA_DRAFT, $id: `${ID_BASE}${file}`, ...plain };
    out[file] = `${JSON.stringify(ordered(doc), null, 2)}\n`;
  }
  return out;
}
