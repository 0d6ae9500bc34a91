/**
 * How every server of a `lars` process listens: on loopback unless told
 * otherwise (`--http-host`, LARS_HTTP_HOST), and a port that cannot be
 * had is one line naming the port, the address and the flag that sets it
 * (a `ListenError` with a stable code), never the raw `EADDRINUSE`.
 */
import type { Server } from 'node:net';
import type { AddressInfo } from 'node:net';
import { ErrorCode, ListenError } from '../lib/errors.ts';

/** Where HTTP listeners bind when nothing says otherwise: this machine only. */
export const DEFAULT_HTTP_HOST = '127.0.0.1';

export interface ListenSpec {
  /** 0 picks a free port. */
  port: number;
  /** Default loopback (DEFAULT_HTTP_HOST). */
  host?: string;
  /** What listens, for the message: `HTTP` (default), `UDP`. */
  what?: string;
  /** The flag that sets the port, named in the message (`--http`, `--port`). */
  portFlag?: string;
  /** The flag (or setting) that sets the address; default `--http-host`. */
  hostFlag?: string;
}

/** The one-line error for a socket that could not bind `port` on `host`; other errors are returned as they are. */
export function listenError(err: Error, spec: ListenSpec): Error {
  const host = spec.host ?? DEFAULT_HTTP_HOST;
  const what = spec.what ?? 'HTTP';
  const where = { port: spec.port, host };
  const portFlag = spec.portFlag ? ` with ${spec.portFlag}` : '';
  const hostFlag = spec.hostFlag ?? '--http-host';
  switch ((err as NodeJS.ErrnoException).code) {
    case 'EADDRINUSE':
      return new ListenError(ErrorCode.portInUse, `${what} port ${spec.port} on ${host} is in use: stop what holds it, or choose another port${portFlag}`, where, { cause: err });
    case 'EACCES':
      return new ListenError(ErrorCode.listen, `${what} port ${spec.port} on ${host}: permission denied (ports below 1024 need privileges); choose a port from 1024 up${portFlag}`, where, { cause: err });
    case 'EADDRNOTAVAIL':
      return new ListenError(ErrorCode.listen, `cannot listen on ${host}: not an address of this machine; give ${hostFlag} one of its addresses, 127.0.0.1 or 0.0.0.0`, where, { cause: err });
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return new ListenError(ErrorCode.listen, `cannot listen on ${host}: no such host name; give ${hostFlag} an address of this machine`, where, { cause: err });
    default:
      return err;
  }
}

/** Binds `server` (HTTP or any net server); rejects with a `ListenError` when the port cannot be had. */
export function listen(server: Server, spec: ListenSpec): Promise<AddressInfo> {
  const host = spec.host ?? DEFAULT_HTTP_HOST;
  return new Promise<AddressInfo>((resolve, reject) => {
    const onError = (err: Error): void => reject(listenError(err, { ...spec, host }));
    server.once('error', onError);
    server.listen(spec.port, host, () => {
      server.off('error', onError);
      resolve(server.address() as AddressInfo);
    });
  });
}

/** `http://host:port/` of a bound address (IPv6 in brackets). */
export function urlOf(a: AddressInfo): string {
  return `http://${a.family === 'IPv6' ? `[${a.address}]` : a.address}:${a.port}/`;
}
