// ModelInfer's messages straight through protobufjs, the one-row call's hot path: a request
// is decoded into protobufjs's message object (absent fields read their defaults from its
// prototype) and a response encoded from a plain object, without proto-loader's conversion of
// every field to and from plain objects. The other RPCs keep proto-loader's conversion.
import path from 'node:path';
import protobuf from 'protobufjs';
import { PACKAGE_ROOT } from '../../package-root.ts';

export const PROTO = path.join(PACKAGE_ROOT, 'src', 'serve', 'grpc', 'grpc_service.proto');

const root = new protobuf.Root().loadSync(PROTO, { keepCase: true });
const InferRequestType = root.lookupType('inference.ModelInferRequest');
const InferResponseType = root.lookupType('inference.ModelInferResponse');

/** An int64 as decoded: a number, or a Long (protobufjs decodes every int64 as one when the long package is there). */
export type Int64 = number | { toNumber(): number; toString(): string };

export interface Contents {
  bool_contents: boolean[];
  int_contents: number[];
  int64_contents: Int64[];
  uint_contents: number[];
  uint64_contents: Int64[];
  fp32_contents: number[];
  fp64_contents: number[];
  bytes_contents: Uint8Array[];
}

export interface InferRequest {
  model_name: string;
  model_version: string;
  id: string;
  inputs: Array<{ name: string; datatype: string; shape: Int64[]; contents: Contents | null }>;
  outputs: Array<{ name: string }>;
  raw_input_contents: Uint8Array[];
}

export interface InferResponse {
  model_name: string;
  model_version: string;
  id: string;
  outputs: Array<{ name: string; datatype: string; shape: number[]; contents?: Partial<Record<keyof Contents, unknown[]>> }>;
  raw_output_contents: Uint8Array[];
}

/** An int64 field's value as a number (values past 2^53 come out unsafe, for the caller's check). */
export const int64Number = (v: Int64): number => (typeof v === 'number' ? v : v.toNumber());

export const decodeInferRequest = (bytes: Buffer): InferRequest => InferRequestType.decode(bytes) as unknown as InferRequest;

export const encodeInferResponse = (response: InferResponse): Buffer => InferResponseType.encode(response).finish() as Buffer;
