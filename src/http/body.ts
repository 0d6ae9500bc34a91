/**
 * Reads a request's JSON body with a size cap. A body declared or found
 * over the cap is refused with 413 (PAYLOAD_TOO_LARGE) and the answer
 * closes the connection (the rest of the body is not read); a body that is
 * not JSON is 400 (BAD_REQUEST).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { HttpError, HttpErrorCode } from './error.ts';

export interface JsonBodyOptions {
  /** Largest body, bytes. */
  maxBytes: number;
  /** What to do instead, appended to the 413's message (`post at most 10000 reports at once`). */
  hint?: string;
  /** Makes the value of an empty body; absent: an empty body is not JSON (400). */
  empty?: () => unknown;
}

/**
 * The parsed body. Rejects with an HttpError (413, 400) as above; never
 * settles when the request fails on the way (the client is gone: there is
 * nobody to answer).
 */
export function readJsonBody(req: IncomingMessage, res: ServerResponse, o: JsonBodyOptions): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const max = o.maxBytes;
    const hint = o.hint === undefined ? '' : `; ${o.hint}`;
    const tooLarge = (message: string): void => {
      res.setHeader('connection', 'close');
      reject(new HttpError(413, message, HttpErrorCode.tooLarge));
    };
    const declared = Number(req.headers['content-length'] ?? 0);
    if (declared > max) {
      tooLarge(`body of ${declared} bytes is over ${max}${hint}`);
      req.resume();
      return;
    }
    const chunks: Buffer[] = [];
    let size = 0;
    let refused = false;
    req.on('data', (c: Buffer) => {
      if (refused) return;
      size += c.length;
      if (size > max) {
        refused = true;
        tooLarge(`body over ${max} bytes${hint}`);
        return;
      }
      chunks.push(c);
    });
    req.on('error', () => undefined);
    req.on('end', () => {
      if (refused) return;
      if (size === 0 && o.empty !== undefined) return resolve(o.empty());
      try {
        resolve(JSON.parse(Buffer.concat(chunks).toString('utf8')));
      } catch (err) {
        reject(new HttpError(400, `body is not JSON: ${(err as Error).message}`, HttpErrorCode.badRequest));
      }
    });
  });
}
