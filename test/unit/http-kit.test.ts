import { expect } from 'chai';
import { createServer, request, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { HttpError, HttpErrorCode, codeOfStatus } from '../../src/http/error.ts';
import { readJsonBody, type JsonBodyOptions } from '../../src/http/body.ts';
import { SseChannel, sseEvent } from '../../src/http/sse.ts';
import { sendError, sendJson } from '../../src/http/json.ts';

type Handler = (req: IncomingMessage, res: ServerResponse) => void;

async function serve(h: Handler): Promise<{ server: Server; url: string }> {
  const server = createServer(h);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { server, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}` };
}

async function stop(server: Server): Promise<void> {
  server.closeAllConnections();
  await new Promise<void>((resolve) => server.close(() => resolve()));
}

/** A server answering the body `readJsonBody` gives, or the HttpError it rejects with. */
function bodyEcho(o: JsonBodyOptions): Handler {
  return (req, res) => {
    readJsonBody(req, res, o).then(
      (body) => sendJson(res, 200, { body }),
      (err: unknown) => sendError(res, err as HttpError),
    );
  };
}

/** POSTs `chunks` without a content-length (chunked), so only the reader's count can refuse them. */
async function postChunked(url: string, chunks: string[]): Promise<{ status: number; body: string; connection: string | undefined }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method: 'POST', headers: { 'transfer-encoding': 'chunked' } }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body, connection: res.headers.connection }));
    });
    req.on('error', reject);
    for (const c of chunks) req.write(c);
    req.end();
  });
}

describe('http kit - error, JSON body, SSE', () => {
  it('http kit - an HttpError carries its status and a stable code, the status\' own unless given', () => {
    const e = new HttpError(404, 'no such route');
    expect([e.status, e.code, e.message, e.name]).to.deep.equal([404, 'NOT_FOUND', 'no such route', 'HttpError']);
    expect(e).to.be.instanceOf(Error);
    expect(new HttpError(503, 'busy', 'TOO_MANY_ROUTES').code).to.equal('TOO_MANY_ROUTES');
    expect(new HttpError(500, 'x', undefined, { cause: 'y' }).cause).to.equal('y');
    expect([codeOfStatus(413), codeOfStatus(418), codeOfStatus(502)]).to.deep.equal([HttpErrorCode.tooLarge, HttpErrorCode.badRequest, HttpErrorCode.internal]);
  });

  it('http kit - a JSON body is read whole; not JSON is 400; an empty one is its own value when asked for', async () => {
    const { server, url } = await serve(bodyEcho({ maxBytes: 64, empty: () => ({}) }));
    const strict = await serve(bodyEcho({ maxBytes: 64 }));
    try {
      const ok = await fetch(url, { method: 'POST', body: '{"a":[1,2]}' });
      expect([ok.status, await ok.json()]).to.deep.equal([200, { body: { a: [1, 2] } }]);
      const empty = await fetch(url, { method: 'POST' });
      expect(await empty.json()).to.deep.equal({ body: {} });
      const bad = await fetch(url, { method: 'POST', body: '{"a"' });
      expect(bad.status).to.equal(400);
      expect(((await bad.json()) as { error: string }).error).to.match(/^body is not JSON: /);
      const emptyStrict = await fetch(strict.url, { method: 'POST' });
      expect(emptyStrict.status, 'empty without a value for it').to.equal(400);
      await emptyStrict.body?.cancel();
    } finally {
      await stop(server);
      await stop(strict.server);
    }
  });

  it('http kit - a body over the cap is 413, declared or counted, with the hint, and the connection closes', async () => {
    const { server, url } = await serve(bodyEcho({ maxBytes: 16, hint: 'post less' }));
    try {
      const declared = await fetch(url, { method: 'POST', body: 'x'.repeat(17) });
      expect(declared.status).to.equal(413);
      expect(declared.headers.get('connection')).to.equal('close');
      expect(await declared.json()).to.deep.equal({ error: 'body of 17 bytes is over 16; post less' });
      const counted = await postChunked(url, ['{"a":', '"0123456789abcdef"}']);
      expect(counted.status).to.equal(413);
      expect(counted.connection).to.equal('close');
      expect(JSON.parse(counted.body)).to.deep.equal({ error: 'body over 16 bytes; post less' });
      const fits = await postChunked(url, ['[1,', '2]']);
      expect([fits.status, JSON.parse(fits.body)]).to.deep.equal([200, { body: [1, 2] }]);
    } finally {
      await stop(server);
    }
  });

  it('http kit - an SSE channel answers with its head and retry, sends events and beats until the client goes', async () => {
    let closed = 0;
    let channel: SseChannel | undefined;
    const { server, url } = await serve((req, res) => {
      channel = new SseChannel(req, res, { retryMs: 1500, heartbeatMs: 20, heartbeat: 'ping', cacheControl: 'no-store', headers: { 'x-accel-buffering': 'no' } });
      channel.onClose(() => closed++);
      channel.send('route', { a: 1 }, 7);
      channel.write(sseEvent('status', { status: 'loading' }));
    });
    try {
      const ac = new AbortController();
      const res = await fetch(url, { signal: ac.signal });
      expect(res.status).to.equal(200);
      expect([res.headers.get('content-type'), res.headers.get('cache-control'), res.headers.get('x-accel-buffering')]).to.deep.equal(['text/event-stream', 'no-store', 'no']);
      const reader = res.body!.getReader();
      const dec = new TextDecoder();
      let text = '';
      while (!text.includes(": ping\n\n")) text += dec.decode((await reader.read()).value as Uint8Array | undefined);
      expect(text.startsWith('retry: 1500\n\nid: 7\nevent: route\ndata: {"a":1}\n\nevent: status\ndata: {"status":"loading"}\n\n')).to.equal(true);
      ac.abort();
      await reader.cancel().catch(() => undefined);
      const t0 = Date.now();
      while (closed === 0 && Date.now() - t0 < 2000) await new Promise((r) => setTimeout(r, 10));
      expect(closed).to.equal(1);
      expect(channel!.closed).to.equal(true);
    } finally {
      await stop(server);
    }
  });

  it('http kit - one serialisation of an event is the same bytes as a send', () => {
    expect(sseEvent('route', { v: 1 }, 3)).to.equal('id: 3\nevent: route\ndata: {"v":1}\n\n');
    expect(sseEvent('transition', 'x')).to.equal('event: transition\ndata: "x"\n\n');
  });
});
