/**
 * The error an HTTP handler throws to answer with a 4xx/5xx: its status and
 * a stable code. Each server renders it in its own body shape (the
 * sidecar's `{ok: false, code, message}`, the console's `{error}`); any
 * other error is a 500 there.
 */

/** Stable codes of HTTP answers that are not a success. */
export const HttpErrorCode = {
  badRequest: 'BAD_REQUEST',
  unauthorized: 'UNAUTHORIZED',
  forbidden: 'FORBIDDEN',
  notFound: 'NOT_FOUND',
  methodNotAllowed: 'METHOD_NOT_ALLOWED',
  conflict: 'CONFLICT',
  tooLarge: 'PAYLOAD_TOO_LARGE',
  /** Not possible now; ask again later. */
  unavailable: 'UNAVAILABLE',
  internal: 'INTERNAL',
} as const;
export type HttpErrorCode = (typeof HttpErrorCode)[keyof typeof HttpErrorCode];

const BY_STATUS: Readonly<Record<number, HttpErrorCode>> = {
  400: HttpErrorCode.badRequest,
  401: HttpErrorCode.unauthorized,
  403: HttpErrorCode.forbidden,
  404: HttpErrorCode.notFound,
  405: HttpErrorCode.methodNotAllowed,
  409: HttpErrorCode.conflict,
  413: HttpErrorCode.tooLarge,
  503: HttpErrorCode.unavailable,
};

/** The code of a status when the thrower names none: 4xx without one of its own is BAD_REQUEST, 5xx INTERNAL. */
export function codeOfStatus(status: number): HttpErrorCode {
  return BY_STATUS[status] ?? (status < 500 ? HttpErrorCode.badRequest : HttpErrorCode.internal);
}

/**
 * A refusal with `status` (4xx/5xx) and a stable `code`: one of
 * HttpErrorCode, or a server's own (the sidecar's NO_ROUTE,
 * TOO_MANY_ROUTES); absent, the status' code.
 */
export class HttpError extends Error {
  readonly status: number;
  readonly code: string;
  constructor(status: number, message: string, code?: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'HttpError';
    this.status = status;
    this.code = code ?? codeOfStatus(status);
  }
}
