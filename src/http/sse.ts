/**
 * A server-sent-event channel on one response: the head and the client's
 * reconnect delay at once, events, and a comment line every `heartbeatMs`
 * so that proxies and clients see the stream alive. An event meant for
 * many channels is serialised once (`sseEvent`) and written to each
 * (`write`).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';

export interface SseOptions {
  /** The client's reconnect delay (`retry:`), ms. */
  retryMs: number;
  /** A comment line this often, ms; absent: none from this channel (its server beats for all its channels). */
  heartbeatMs?: number;
  /** The comment's text: `: <text>`; default `heartbeat`. */
  heartbeat?: string;
  /** `cache-control`; default `no-cache`. */
  cacheControl?: string;
  /** Further response headers. */
  headers?: Readonly<Record<string, string>>;
}

/** One event as sent: `id:` (when given), `event:` and its data as JSON on one line. */
export function sseEvent(event: string, data: unknown, id?: number | string): string {
  return `${id === undefined ? '' : `id: ${id}\n`}event: ${event}\ndata: ${JSON.stringify(data)}\n\n`;
}

export class SseChannel {
  readonly res: ServerResponse;
  private readonly beat: string;
  private timer: NodeJS.Timeout | undefined;

  /** Answers `req` with the event-stream head and `retry:`; the socket is not timed out nor delayed (Nagle). */
  constructor(req: IncomingMessage, res: ServerResponse, o: SseOptions) {
    this.res = res;
    this.beat = `: ${o.heartbeat ?? 'heartbeat'}\n\n`;
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': o.cacheControl ?? 'no-cache', connection: 'keep-alive', ...o.headers });
    req.socket.setTimeout(0);
    req.socket.setNoDelay(true);
    res.write(`retry: ${o.retryMs}\n\n`);
    if (o.heartbeatMs !== undefined) {
      this.timer = setInterval(() => this.heartbeat(), o.heartbeatMs);
      this.timer.unref();
    }
    res.on('close', () => clearInterval(this.timer));
  }

  /** True once the response has ended or its connection closed. */
  get closed(): boolean {
    return this.res.writableEnded || this.res.destroyed;
  }

  send(event: string, data: unknown, id?: number | string): void {
    this.res.write(sseEvent(event, data, id));
  }

  /** An event serialised by `sseEvent` (once for many channels). */
  write(chunk: string): void {
    this.res.write(chunk);
  }

  /** The comment line that keeps the stream alive. */
  heartbeat(): void {
    this.res.write(this.beat);
  }

  /** Calls `f` once, when the client goes away or the channel is ended. */
  onClose(f: () => void): void {
    this.res.on('close', f);
  }

  /** Ends the stream. */
  end(): void {
    clearInterval(this.timer);
    this.res.end();
  }
}
