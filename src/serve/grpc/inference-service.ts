// The Open Inference Protocol over gRPC (inference.GRPCInferenceService, the pinned
// grpc_service.proto): health, metadata and ModelInfer with `contents` or raw contents. It
// shares the web service's context: model resolution, the bearer token (as `authorization`
// metadata), the data plane with its dynamic batching, metrics and the prediction log.
import { randomUUID } from 'node:crypto';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import type ort from 'onnxruntime-node';
import { ModelNotFoundError } from '../../registry/store.ts';
import { RefError } from '../../registry/refs.ts';
import { log } from '../../log.ts';
import { bearerCheck } from '../auth.ts';
import type { ServeContext } from '../context.ts';
import { badRequest, HttpError } from '../errors.ts';
import { encodeBinary } from '../v2-binary.ts';
import { v2Infer, v2Model, v2Readiness } from '../v2-infer.ts';
import { datatypeOf, v2Shape, type V2InputTensor } from '../v2-tensors.ts';
import { decodeInferRequest, encodeInferResponse, int64Number, PROTO, type Contents, type InferRequest, type InferResponse } from './infer-codec.ts';
import { grpcLatency, grpcRequests } from './metrics.ts';

// int64s arrive as strings, so no precision is lost before the safe-integer check.
const definition = protoLoader.loadSync(PROTO, { keepCase: true, longs: String, enums: String, defaults: true, oneofs: true });
const proto = grpc.loadPackageDefinition(definition) as unknown as { inference: { GRPCInferenceService: grpc.ServiceClientConstructor } };
export const InferenceService = proto.inference.GRPCInferenceService;

/** The service as served: ModelInfer's messages through its own codec (infer-codec.ts). */
const served: grpc.ServiceDefinition = {
  ...InferenceService.service,
  ModelInfer: { ...InferenceService.service.ModelInfer, requestDeserialize: decodeInferRequest, responseSerialize: encodeInferResponse },
};

const utf8 = new TextDecoder('utf-8', { fatal: true });

/** A bytes field as a Buffer view (protobufjs gives Buffers in Node; the type says Uint8Array). */
const asBuffer = (bytes: Uint8Array): Buffer => (Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength));

/** The `contents` field of a datatype, as JSON-path values (checked by the same rules). */
function fromContents(name: string, datatype: string, contents: Contents | null): unknown[] {
  const c = contents;
  switch (datatype) {
    case 'FP32':
      return c?.fp32_contents ?? [];
    case 'FP64':
      return c?.fp64_contents ?? [];
    case 'INT8':
    case 'INT16':
    case 'INT32':
      return c?.int_contents ?? [];
    case 'UINT8':
    case 'UINT16':
    case 'UINT32':
      return c?.uint_contents ?? [];
    case 'INT64':
      return (c?.int64_contents ?? []).map(int64Number);
    case 'UINT64':
      return (c?.uint64_contents ?? []).map(int64Number);
    case 'BOOL':
      return c?.bool_contents ?? [];
    case 'BYTES':
      return (c?.bytes_contents ?? []).map((b, i) => {
        try {
          return utf8.decode(b);
        } catch {
          throw badRequest(`input '${name}': element ${i} is not valid UTF-8`);
        }
      });
    case 'FP16':
      throw badRequest(`input '${name}': FP16 has no contents field in the protocol; send it in raw_input_contents`);
    default:
      throw badRequest(`input '${name}': datatype ${datatype} is not supported`);
  }
}

function toContents(tensor: ort.Tensor): Partial<Record<keyof Contents, unknown[]>> {
  const data = tensor.data;
  switch (tensor.type) {
    case 'float32':
      return { fp32_contents: Array.from(data as Float32Array) };
    case 'float64':
      return { fp64_contents: Array.from(data as Float64Array) };
    case 'int8':
    case 'int16':
    case 'int32':
      return { int_contents: Array.from(data as Int32Array) };
    case 'uint8':
    case 'uint16':
    case 'uint32':
      return { uint_contents: Array.from(data as Uint32Array) };
    case 'int64':
      return { int64_contents: Array.from(data as BigInt64Array, String) };
    case 'uint64':
      return { uint64_contents: Array.from(data as BigUint64Array, String) };
    case 'bool':
      return { bool_contents: Array.from(data as Uint8Array, (v) => v !== 0) };
    case 'string':
      return { bytes_contents: (data as string[]).map((s) => Buffer.from(s, 'utf8')) };
    default:
      throw new Error(`output type ${tensor.type} has no v2 contents field`);
  }
}

function shapeOf(name: string, shape: InferRequest['inputs'][number]['shape']): number[] {
  return shape.map((d) => {
    const n = int64Number(d);
    if (!Number.isSafeInteger(n) || n < 0) throw badRequest(`input '${name}': shape dimension ${d} must be a whole number`);
    return n;
  });
}

/** An HttpError (or a registry error) as the gRPC status the protocol names. */
function statusOf(err: unknown): grpc.ServiceError | Error {
  const status = (code: grpc.status, details: string) => Object.assign(new Error(details), { code, details });
  if (err instanceof HttpError) {
    if (err.statusCode === 401) return status(grpc.status.UNAUTHENTICATED, err.message);
    if (err.statusCode === 404) return status(grpc.status.NOT_FOUND, err.message);
    if (err.statusCode === 413 || err.statusCode === 429 || err.statusCode === 503) return status(grpc.status.RESOURCE_EXHAUSTED, err.message);
    return status(grpc.status.INVALID_ARGUMENT, err.message);
  }
  if (err instanceof ModelNotFoundError) return status(grpc.status.NOT_FOUND, err.message);
  if (err instanceof RefError) return status(grpc.status.INVALID_ARGUMENT, err.message);
  log.error({ err }, 'gRPC call failed');
  return status(grpc.status.INTERNAL, 'internal error');
}

type Handler<Req, Res> = (request: Req) => Promise<Res>;

export function inferenceHandlers(ctx: ServeContext): grpc.UntypedServiceImplementation {
  const refused = ctx.config.apiToken ? bearerCheck(ctx.config.apiToken) : undefined;

  /** Auth (ServerLive and ServerReady stay open, as HTTP health does), metrics and status mapping around a handler. */
  function unary<Req, Res>(method: string, open: boolean, handler: Handler<Req, Res>): grpc.handleUnaryCall<Req, Res> {
    return (call, callback) => {
      const started = process.hrtime.bigint();
      const finish = (code: grpc.status, model = '') => {
        grpcRequests.inc({ method, model, code: grpc.status[code] });
        grpcLatency.observe({ method, model }, Number(process.hrtime.bigint() - started) / 1e9);
      };
      const header = call.metadata.get('authorization')[0];
      const problem = open ? undefined : refused?.(typeof header === 'string' ? header : header?.toString());
      if (problem) {
        finish(grpc.status.UNAUTHENTICATED);
        return callback(statusOf(new HttpError(401, problem)) as grpc.ServiceError);
      }
      handler(call.request).then(
        (response) => {
          const named = call.request as { model_name?: string; name?: string };
          finish(grpc.status.OK, named.model_name ?? named.name ?? '');
          callback(null, response);
        },
        (err: unknown) => {
          const failure = statusOf(err) as grpc.ServiceError;
          finish(failure.code ?? grpc.status.INTERNAL);
          callback(failure);
        },
      );
    };
  }

  return {
    ServerLive: unary('ServerLive', true, async () => ({ live: true })),
    ServerReady: unary('ServerReady', true, async () => ({ ready: ctx.resolver.ready() })),
    // No model_repository here: the pinned proto declares no repository RPCs (HTTP has them).
    ServerMetadata: unary('ServerMetadata', false, async () => ({ name: 'mldeploy', version: ctx.version, extensions: ['binary_tensor_data'] })),
    ModelReady: unary('ModelReady', false, async (req: { name: string; version: string }) => ({ ready: (await v2Readiness(ctx, req.name, req.version || undefined)).loaded })),
    ModelMetadata: unary('ModelMetadata', false, async (req: { name: string; version: string }) => {
      const model = await v2Model(ctx, req.name, req.version || undefined);
      const tensor = (t: (typeof model.metadata.inputs)[number]) => ({ name: t.name, datatype: datatypeOf(t.type), shape: v2Shape(t) });
      return {
        name: model.name,
        versions: (await ctx.store.versionNumbers(model.name)).map(String),
        platform: 'onnxruntime_onnx',
        inputs: model.metadata.inputs.map(tensor),
        outputs: model.metadata.outputs.map(tensor),
      };
    }),
    ModelInfer: unary('ModelInfer', false, async (req: InferRequest): Promise<InferResponse> => {
      if (req.model_version && !/^[0-9]{1,9}$/.test(req.model_version)) throw badRequest(`model_version must be a version number, got ${JSON.stringify(req.model_version)}`);
      const model = await v2Model(ctx, req.model_name, req.model_version || undefined);
      const sentRaw = req.raw_input_contents.length > 0;
      if (sentRaw && req.raw_input_contents.length !== req.inputs.length)
        throw badRequest(`raw_input_contents has ${req.raw_input_contents.length} entries for ${req.inputs.length} inputs; give one per input, in order`);
      const binary = sentRaw ? new Map(req.inputs.map((input, i) => [input.name, asBuffer(req.raw_input_contents[i])])) : undefined;
      const inputs: V2InputTensor[] = req.inputs.map((input) => ({
        name: input.name,
        datatype: input.datatype,
        shape: shapeOf(input.name, input.shape),
        ...(sentRaw ? { parameters: { binary_data_size: 0 } } : { data: fromContents(input.name, input.datatype, input.contents) }),
      }));
      const requested = req.outputs.length > 0 ? req.outputs.map((o) => o.name) : undefined;
      const { names, tensors } = await v2Infer(ctx, model, inputs, requested, binary, req.id || randomUUID());
      // FP16 has no contents field: a call with an FP16 output is answered in raw contents whatever it sent.
      const raw = sentRaw || names.some((n) => tensors[n].type === 'float16');
      const outputs = names.map((n) => ({
        name: n,
        datatype: datatypeOf(tensors[n].type),
        shape: [...tensors[n].dims],
        ...(raw ? {} : { contents: toContents(tensors[n]) }),
      }));
      // Raw contents answer raw contents (what Triton's clients read); `contents` answer `contents`.
      return {
        model_name: model.name,
        model_version: String(model.version),
        id: req.id,
        outputs,
        raw_output_contents: raw ? names.map((n) => encodeBinary(tensors[n])) : [],
      };
    }),
  };
}

/**
 * The gRPC floor for `npm run bench:serve` (with MLDEPLOY_SERVE_NOOP_ROUTE, as /bench/noop is
 * HTTP's): a unary method that answers a fixed one-row ModelInferResponse without decoding
 * the request, so grpc-js and HTTP/2 alone are measured.
 */
export const NOOP_METHOD = '/mldeploy.bench.Noop/Infer';
const identity = (bytes: Buffer) => bytes;
const NOOP_SERVICE: grpc.ServiceDefinition = {
  Infer: {
    path: NOOP_METHOD,
    requestStream: false,
    responseStream: false,
    requestSerialize: identity,
    requestDeserialize: identity,
    responseSerialize: identity,
    responseDeserialize: identity,
  },
};

export interface GrpcServer {
  port: number;
  /** Refuses new calls, answers those in flight, then stops. */
  close(): Promise<void>;
}

export async function startGrpcServer(ctx: ServeContext, host: string, port: number): Promise<GrpcServer> {
  // Channelz (grpc-js's per-call introspection counters) is off: nothing here reads it, and it costs on every call.
  const server = new grpc.Server({ 'grpc.max_receive_message_length': ctx.config.bodyLimitBytes, 'grpc.enable_channelz': 0 });
  server.addService(served, inferenceHandlers(ctx));
  if (ctx.config.noopRoute) {
    const answer = encodeInferResponse({
      model_name: 'noop',
      model_version: '1',
      id: '',
      outputs: [{ name: 'y', datatype: 'FP32', shape: [1, 1] }],
      raw_output_contents: [Buffer.alloc(4)],
    });
    server.addService(NOOP_SERVICE, { Infer: (_call: unknown, callback: grpc.sendUnaryData<Buffer>) => callback(null, answer) });
  }
  const bound = await new Promise<number>((resolve, reject) =>
    server.bindAsync(`${host.includes(':') ? `[${host}]` : host}:${port}`, grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))),
  );
  return {
    port: bound,
    close: () => new Promise<void>((resolve) => server.tryShutdown(() => resolve())),
  };
}
