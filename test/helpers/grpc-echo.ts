/** The tests' gRPC service: one unary method with raw bytes in and out (no codegen, no .proto), and its client. */
import * as grpc from '@grpc/grpc-js';

export const identity = (b: Buffer): Buffer => b;

export const ECHO = {
  hello: { path: '/lars.test.Echo/Hello', requestStream: false, responseStream: false, requestSerialize: identity, requestDeserialize: identity, responseSerialize: identity, responseDeserialize: identity },
} satisfies grpc.ServiceDefinition;

export const EchoClient = grpc.makeGenericClientConstructor(ECHO, 'Echo');

export type Echo = grpc.Client & { hello(req: Buffer, opts: grpc.CallOptions, cb: (err: grpc.ServiceError | null, res?: Buffer) => void): grpc.ClientUnaryCall };
