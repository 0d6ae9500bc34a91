/**
 * JSON answers of the console and the health endpoints: UTF-8 JSON, never
 * cached, and an HttpError as `{"error": message}`. (The sidecar's API
 * answers in its own shape, `{ok, code, message}`.)
 */
import type { ServerResponse } from 'node:http';
import type { HttpError } from './error.ts';

export const JSON_TYPE = 'application/json; charset=utf-8';

/** Answers `status` with `body` as JSON. */
export function sendJson(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'content-type': JSON_TYPE, 'cache-control': 'no-store' });
  res.end(JSON.stringify(body));
}

/** Answers an HttpError: its status, `{"error": message}`. */
export function sendError(res: ServerResponse, err: HttpError): void {
  sendJson(res, err.status, { error: err.message });
}
