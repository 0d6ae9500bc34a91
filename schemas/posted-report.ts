/**
 * Validators of the call results a local service posts to the sidecar
 * (`POST /v1/report`, JSON): one PostedReport, or `{"reports": [...]}`
 * (PostedReports), both defined in contract.ts.
 *
 * An accepted report is checked by the compiled schema alone; a refused one
 * is explained field by field, in the order of the schema's fields, with a
 * message the caller can act on (`reports[3].port must be an integer
 * 1..65535, got 0`).
 */
import { TypeCompiler } from '@sinclair/typebox/compiler';
import type { TSchema } from '@sinclair/typebox';
import { LIMITS, PostedReportSchema, type PostedReport } from './contract.ts';

export type { PostedReport, PostedReports } from './contract.ts';

/** A refusal: `detail` is the message for the client. */
export type Posted<T> = { ok: true; value: T } | { ok: false; detail: string };

/** Most reports in one post (PostedReports' `maxItems`). */
export const MAX_POSTED_REPORTS = LIMITS.maxBatchReports;

const reportCheck = TypeCompiler.Compile(PostedReportSchema);
const FIELDS = Object.keys(PostedReportSchema.properties) as Array<keyof PostedReport>;
const REQUIRED = new Set<string>(PostedReportSchema.required ?? []);
const fieldChecks = new Map(FIELDS.map((k) => [k, TypeCompiler.Compile(PostedReportSchema.properties[k])] as const));

/** What a field's schema asks for, in words. */
function mustBe(s: TSchema & { minimum?: number; maximum?: number; pattern?: string; type?: string }): string {
  if (s.pattern !== undefined) return 'an IPv4 address a.b.c.d';
  return `${s.type === 'integer' ? 'an integer' : 'a number'} ${s.minimum}..${s.maximum}`;
}

function isObject(x: unknown): x is Record<string, unknown> {
  return typeof x === 'object' && x !== null && !Array.isArray(x);
}

/** One posted report; `at` names it in a refusal (`report`, `reports[3]`). The value is a copy with the report's fields only. */
export function validatePostedReport(r: unknown, at: string): Posted<PostedReport> {
  if (!reportCheck.Check(r)) return { ok: false, detail: explain(r, at) };
  const { modid, cmdid, ip, port, retcode, latency_ms: lat, utilization: util } = r;
  return { ok: true, value: { modid, cmdid, ip, port, retcode, ...(lat !== undefined ? { latency_ms: lat } : {}), ...(util !== undefined ? { utilization: util } : {}) } };
}

function explain(r: unknown, at: string): string {
  if (!isObject(r)) return `${at} must be an object {${FIELDS.join(', ')}}`;
  for (const k of Object.keys(r)) if (!fieldChecks.has(k as keyof PostedReport)) return `${at}.${k} is not a report field (${FIELDS.join(', ')})`;
  for (const k of FIELDS) {
    const v = r[k];
    if ((v === undefined && !REQUIRED.has(k)) || fieldChecks.get(k)!.Check(v)) continue;
    return `${at}.${k} must be ${mustBe(PostedReportSchema.properties[k])}, got ${JSON.stringify(v) ?? 'nothing'}`;
  }
  return `${at} refused without a reason`;
}

/**
 * A posted body: `{"reports": [...]}` (every report valid, or the post is
 * refused whole), or else one report.
 */
export function validatePostedBody(body: unknown): Posted<PostedReport[]> {
  if (isObject(body) && 'reports' in body) {
    const list = body['reports'];
    if (!Array.isArray(list)) return { ok: false, detail: 'reports must be an array of reports' };
    if (list.length > MAX_POSTED_REPORTS) return { ok: false, detail: `${list.length} reports; post at most ${MAX_POSTED_REPORTS} at once` };
    if (Object.keys(body).length !== 1) return { ok: false, detail: 'a batch is {"reports": [...]} and nothing else' };
    const out: PostedReport[] = [];
    for (let i = 0; i < list.length; i++) {
      const v = validatePostedReport(list[i], `reports[${i}]`);
      if (!v.ok) return v;
      out.push(v.value);
    }
    return { ok: true, value: out };
  }
  const v = validatePostedReport(body, 'report');
  return v.ok ? { ok: true, value: [v.value] } : v;
}
