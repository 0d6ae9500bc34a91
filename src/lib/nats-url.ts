/**
 * NATS URLs that carry credentials (`nats://user:pass@host:4222`, `nats://token@host:4222`):
 * taking the credentials out for the client, and showing such a URL without its secrets.
 *
 * As in the other NATS clients, a user with a password is a user login and a
 * user alone is a token. Percent-encoded characters in either are decoded.
 */

/** The credentials a URL carries. */
export type UrlLogin = { readonly user: string; readonly pass: string } | { readonly token: string };

/** What stands for a secret in a shown URL. */
export const REDACTED = '***';

/** `scheme://` (optional), user info, `@`, the rest. The host part never holds an `@`: the last one ends the user info. */
const WITH_USERINFO = /^(\s*(?:[a-z][a-z0-9+.-]*:\/\/)?)([^\s]*)@([^@]*)$/i;

function decode(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}

/** The URLs of a comma-separated list, trimmed, empty ones left out. */
export function splitNatsUrls(urls: string): string[] {
  return urls
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s.length > 0);
}

/** One URL without its credentials, and the credentials (undefined when it has none). */
export function takeUrlLogin(url: string): { url: string; login?: UrlLogin } {
  const m = WITH_USERINFO.exec(url);
  if (!m) return { url };
  const scheme = m[1]!.trim();
  const info = m[2]!;
  const rest = m[3]!;
  const colon = info.indexOf(':');
  const login: UrlLogin = colon < 0 ? { token: decode(info) } : { user: decode(info.slice(0, colon)), pass: decode(info.slice(colon + 1)) };
  return { url: `${scheme}${rest}`, login };
}

/**
 * A URL (or a comma-separated list of them) fit to print: a password or a
 * token replaced by `***` (`nats://admin:***@127.0.0.1:4222`,
 * `nats://***@127.0.0.1:4222`). URLs without credentials are returned as they are.
 */
export function redactNatsUrl(urls: string): string {
  return urls
    .split(',')
    .map((u) => {
      const m = WITH_USERINFO.exec(u);
      if (!m) return u;
      const info = m[2]!;
      const colon = info.indexOf(':');
      return `${m[1]}${colon < 0 ? REDACTED : `${info.slice(0, colon)}:${REDACTED}`}@${m[3]}`;
    })
    .join(',');
}

/** Whether any URL of a list carries credentials. */
export function hasUrlLogin(urls: string): boolean {
  return splitNatsUrls(urls).some((u) => takeUrlLogin(u).login !== undefined);
}
