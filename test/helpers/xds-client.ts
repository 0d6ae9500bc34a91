// A proxyless gRPC client written against docs/xds.md only (@grpc/grpc-js and
// @grpc/grpc-js-xds, nothing of this project), in a process of its own: its
// bootstrap in GRPC_XDS_BOOTSTRAP_CONFIG, its target in XDS_TARGET (run with tsx). Each line
// `<n>` on stdin makes n calls of the echo service; it answers with one line,
// the JSON array of what each call returned (the host's id, or `error:<code>`).
import * as readline from 'node:readline';
import * as grpc from '@grpc/grpc-js';
import * as xds from '@grpc/grpc-js-xds';

xds.register();
const id = (b: Buffer): Buffer => b;
const Echo = grpc.makeGenericClientConstructor(
  { hello: { path: '/lars.test.Echo/Hello', requestStream: false, responseStream: false, requestSerialize: id, requestDeserialize: id, responseSerialize: id, responseDeserialize: id } },
  'Echo',
);
type EchoClient = grpc.Client & { hello(req: Buffer, opts: grpc.CallOptions, cb: (err: grpc.ServiceError | null, res?: Buffer) => void): void };
const client = new Echo(process.env['XDS_TARGET'] ?? '', grpc.credentials.createInsecure()) as unknown as EchoClient;
const call = (): Promise<string> =>
  new Promise((resolve) => client.hello(Buffer.from('hi'), { deadline: Date.now() + 5000 }, (err, res) => resolve(err ? `error:${err.code}` : String(res))));

const lines = readline.createInterface({ input: process.stdin });
lines.on('line', (l) => {
  void (async () => {
    const out: string[] = [];
    for (let i = 0; i < Number(l); i++) out.push(await call());
    process.stdout.write(JSON.stringify(out) + '\n');
  })();
});
lines.on('close', () => process.exit(0));
