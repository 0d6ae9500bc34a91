/** The contract's msgpack encoding (schemas/codec.ts), for the runtime. */
export { encode, decode, tryDecode } from '../../schemas/codec.ts';
