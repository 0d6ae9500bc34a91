/**
 * The content hash of a route state: every field but `ts`, with object keys
 * sorted, so that one version number can be checked to mean one content
 * wherever the state was seen.
 */
import { createHash } from 'node:crypto';

function canonical(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(canonical);
  if (v !== null && typeof v === 'object') {
    const o = v as Record<string, unknown>;
    const out: Record<string, unknown> = {};
    for (const k of Object.keys(o).sort()) if (o[k] !== undefined) out[k] = canonical(o[k]);
    return out;
  }
  return v;
}

export function stateHash(state: object): string {
  const rest: Record<string, unknown> = { ...(state as Record<string, unknown>) };
  delete rest['ts'];
  return createHash('sha1').update(JSON.stringify(canonical(rest))).digest('hex').slice(0, 12);
}
