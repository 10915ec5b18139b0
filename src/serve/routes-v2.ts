// The Open Inference Protocol v2 (KServe / Triton REST): JSON tensors, and the binary
// tensor extension (src/serve/v2-binary.ts) that tritonclient.http uses by default.
import type { FastifyInstance, FastifyReply } from 'fastify';
import { SLICE_RECORDS } from '../inference/data-plane.ts';
import type { LoadedModel } from '../registry/runtime.ts';
import { errorResponses, untilClientGone } from './errors.ts';
import type { ServeContext } from './context.ts';
import { BINARY_CONTENT_TYPE, BINARY_HEADER, binaryOf, encodeBinary, parseBinaryBody } from './v2-binary.ts';
import { v2Infer, v2Model, v2Readiness } from './v2-infer.ts';
import { v2RepositoryRoutes } from './v2-repository.ts';
import { datatypeOf, fromTensor, v2Shape, type V2InputTensor } from './v2-tensors.ts';

/** The protocol extensions this server speaks (server metadata, HTTP and gRPC). */
export const V2_EXTENSIONS = ['binary_tensor_data', 'model_repository'];

const DATATYPE_ENUM = ['BOOL', 'UINT8', 'UINT16', 'UINT32', 'UINT64', 'INT8', 'INT16', 'INT32', 'INT64', 'FP16', 'FP32', 'FP64', 'BYTES'];

const TensorMetadata = {
  type: 'object',
  properties: { name: { type: 'string' }, datatype: { type: 'string' }, shape: { type: 'array', items: { type: 'integer' } } },
} as const;

const ModelMetadataSchema = {
  type: 'object',
  properties: {
    name: { type: 'string' },
    versions: { type: 'array', items: { type: 'string' } },
    platform: { type: 'string' },
    inputs: { type: 'array', items: TensorMetadata },
    outputs: { type: 'array', items: TensorMetadata },
  },
} as const;

// The JSON parser refuses prototype-poisoning keys anywhere in a body (400), so the open
// `parameters` objects say so; their values are scalars, as the protocol defines them, and
// tensor data are scalars or nested arrays of them, never objects.
const OpenParameters = {
  type: 'object',
  propertyNames: { not: { enum: ['__proto__', 'constructor'] } },
  additionalProperties: { anyOf: [{ type: 'boolean' }, { type: 'number' }, { type: 'string' }] },
} as const;
const TensorScalar = { anyOf: [{ type: 'number' }, { type: 'string' }, { type: 'boolean' }] } as const;
const TensorData = { type: 'array', items: { anyOf: [TensorScalar, { type: 'array', items: { anyOf: [TensorScalar, { type: 'array', items: TensorScalar }] } }] } } as const;

const InferRequestSchema = {
  type: 'object',
  required: ['inputs'],
  additionalProperties: false,
  properties: {
    id: { type: 'string', maxLength: 256 },
    parameters: { ...OpenParameters, properties: { binary_data_output: { type: 'boolean' } } },
    inputs: {
      type: 'array',
      minItems: 1,
      maxItems: 256,
      items: {
        type: 'object',
        required: ['name', 'shape', 'datatype'],
        additionalProperties: false,
        properties: {
          name: { type: 'string' },
          shape: { type: 'array', maxItems: 8, items: { type: 'integer', minimum: 0 } },
          datatype: { type: 'string', enum: DATATYPE_ENUM },
          parameters: { ...OpenParameters, properties: { binary_data_size: { type: 'integer', minimum: 0 } } },
          data: TensorData,
        },
      },
    },
    outputs: {
      type: 'array',
      maxItems: 256,
      items: {
        type: 'object',
        required: ['name'],
        additionalProperties: false,
        properties: { name: { type: 'string' }, parameters: { ...OpenParameters, properties: { binary_data: { type: 'boolean' } } } },
      },
    },
  },
  examples: [
    {
      id: 'ride-1',
      inputs: [
        { name: 'PU_DO', shape: [1, 1], datatype: 'BYTES', data: ['10_50'] },
        { name: 'trip_distance', shape: [1, 1], datatype: 'FP32', data: [40] },
      ],
    },
  ],
} as const;

const InferResponseSchema = {
  type: 'object',
  properties: {
    model_name: { type: 'string' },
    model_version: { type: 'string' },
    id: { type: 'string' },
    outputs: {
      type: 'array',
      items: {
        type: 'object',
        properties: { name: { type: 'string' }, datatype: { type: 'string' }, shape: { type: 'array', items: { type: 'integer' } }, data: { type: 'array' } },
      },
    },
  },
} as const;

// The registry's rules for names and version numbers (src/registry/refs.ts), so the schema admits exactly what the server takes.
const NameParams = {
  type: 'object',
  required: ['name'],
  properties: { name: { type: 'string', pattern: '^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$' }, version: { type: 'string', pattern: '^0*[1-9][0-9]{0,8}$' } },
} as const;

interface ModelParams {
  name: string;
  version?: string;
}

interface InferBody {
  id?: string;
  parameters?: { binary_data_output?: boolean };
  inputs: V2InputTensor[];
  outputs?: Array<{ name: string; parameters?: { binary_data?: boolean } }>;
}

export async function v2Routes(app: FastifyInstance, ctx: ServeContext): Promise<void> {
  const tags = ['Open Inference Protocol v2'];

  const modelFor = (params: ModelParams): Promise<LoadedModel> => v2Model(ctx, params.name, params.version);

  app.get(
    '/v2',
    {
      schema: {
        tags,
        summary: 'Server metadata',
        response: { 200: { type: 'object', properties: { name: { type: 'string' }, version: { type: 'string' }, extensions: { type: 'array', items: { type: 'string' } } } } },
      },
    },
    async () => ({
      name: 'mldeploy',
      version: ctx.version,
      extensions: V2_EXTENSIONS,
    }),
  );

  app.get('/v2/health/live', { schema: { tags, summary: 'Liveness', response: { 200: { type: 'object', properties: { live: { type: 'boolean' } } } } } }, async () => ({
    live: true,
  }));
  // The protocol's health answers are the status code: 200 is true, a 4xx false, with an empty
  // body (KServe's required API). Not ready is a 400, as Triton answers; /readyz keeps its 503.
  app.get(
    '/v2/health/ready',
    {
      schema: {
        tags,
        summary: 'Readiness: 200 once the default model is loaded; 400 with an empty body until then (the protocol: 200 true, 4xx false)',
        response: { 200: { type: 'object', properties: { ready: { type: 'boolean' } } }, 400: { description: 'Not ready (an empty body)', type: 'null' } },
      },
    },
    async (_request, reply) => (ctx.resolver.ready() ? { ready: true } : reply.code(400).send()),
  );
  v2RepositoryRoutes(app, ctx, tags);

  const metadata = async (request: { params: ModelParams }) => {
    const model = await modelFor(request.params);
    const versions = await ctx.store.versionNumbers(model.name);
    return {
      name: model.name,
      versions: versions.map(String),
      platform: 'onnxruntime_onnx',
      inputs: model.metadata.inputs.map((t) => ({ name: t.name, datatype: datatypeOf(t.type), shape: v2Shape(t) })),
      outputs: model.metadata.outputs.map((t) => ({ name: t.name, datatype: datatypeOf(t.type), shape: v2Shape(t) })),
    };
  };
  const metadataSchema = { tags, summary: 'Model metadata: versions, inputs and outputs', params: NameParams, response: { 200: ModelMetadataSchema, ...errorResponses } };
  app.get<{ Params: ModelParams }>('/v2/models/:name', { schema: metadataSchema }, metadata);
  app.get<{ Params: ModelParams }>('/v2/models/:name/versions/:version', { schema: metadataSchema }, metadata);

  // Readiness reports whether the version is loaded, without loading it; not loaded is a 400, as Triton answers.
  const ready = async (request: { params: ModelParams }, reply: FastifyReply) => {
    const state = await v2Readiness(ctx, request.params.name, request.params.version);
    if (!state.loaded) return reply.code(400).send({ error: `model ${state.name} version ${state.version} is not loaded in this process; an infer call loads it` });
    return { name: state.name, version: String(state.version), ready: true };
  };
  const readySchema = {
    tags,
    summary: 'Model readiness: 200 when the version is loaded, 400 when not (never loads it)',
    params: NameParams,
    response: { 200: { type: 'object', properties: { name: { type: 'string' }, version: { type: 'string' }, ready: { type: 'boolean' } } }, ...errorResponses },
  };
  app.get<{ Params: ModelParams }>('/v2/models/:name/ready', { schema: readySchema }, ready);
  app.get<{ Params: ModelParams }>('/v2/models/:name/versions/:version/ready', { schema: readySchema }, ready);

  const infer = async (request: { id: string; params: ModelParams; body: InferBody; served?: unknown }, reply: FastifyReply) => {
    const model = await modelFor(request.params);
    request.served = model;
    const body = request.body;
    const { names: wanted, tensors } = await v2Infer(
      ctx,
      model,
      body.inputs,
      body.outputs?.map((o) => o.name),
      binaryOf(body),
      // The protocol's own request id when the client gives one (tritonclient's request_id).
      body.id || request.id,
      // Only a request scored in slices can stop between them; one-row calls skip the listener.
      (body.inputs[0]?.shape[0] ?? 0) > SLICE_RECORDS ? untilClientGone(reply) : undefined,
    );
    const head = { model_name: model.name, model_version: String(model.version), ...(body.id !== undefined ? { id: body.id } : {}) };
    // Binary outputs only when asked: per output (binary_data) or for all (binary_data_output).
    const allBinary = body.parameters?.binary_data_output === true;
    const asked = new Map(body.outputs?.map((o) => [o.name, o.parameters?.binary_data]));
    const binary = wanted.filter((n) => asked.get(n) ?? allBinary);
    if (binary.length === 0) return { ...head, outputs: wanted.map((n) => fromTensor(n, tensors[n])) };
    const chunks: Buffer[] = [];
    const outputs = wanted.map((n) => {
      if (!binary.includes(n)) return fromTensor(n, tensors[n]);
      const bytes = encodeBinary(tensors[n]);
      chunks.push(bytes);
      return { name: n, datatype: datatypeOf(tensors[n].type), shape: [...tensors[n].dims], parameters: { binary_data_size: bytes.length } };
    });
    const json = Buffer.from(JSON.stringify({ ...head, outputs }));
    return reply
      .header('Inference-Header-Content-Length', json.length)
      .type('application/octet-stream')
      .send(Buffer.concat([json, ...chunks]));
  };
  const inferSchema = {
    tags,
    summary: 'Run the model on its raw input tensors (JSON, or the binary tensor extension with Inference-Header-Content-Length)',
    params: NameParams,
    body: InferRequestSchema,
    response: { 200: InferResponseSchema, ...errorResponses },
  };
  app.post<{ Params: ModelParams; Body: InferBody }>('/v2/models/:name/infer', { schema: inferSchema }, infer);
  app.post<{ Params: ModelParams; Body: InferBody }>('/v2/models/:name/versions/:version/infer', { schema: inferSchema }, infer);
}

/**
 * tritonclient.http sends its JSON without a Content-Type; a binary-extension request
 * (Inference-Header-Content-Length) is parsed by the binary parser whatever type it names.
 */
export function v2ContentTypes(app: FastifyInstance): void {
  app.addContentTypeParser(BINARY_CONTENT_TYPE, { parseAs: 'buffer' }, (request, body, done) => {
    try {
      done(null, parseBinaryBody(body as Buffer, request.headers[BINARY_HEADER]));
    } catch (err) {
      done(err as Error, undefined);
    }
  });
  app.addHook('onRequest', async (request) => {
    if (!request.url.startsWith('/v2/') || request.method !== 'POST') return;
    if (request.headers[BINARY_HEADER] !== undefined) request.headers['content-type'] = BINARY_CONTENT_TYPE;
    // An empty body stays without a type (tritonclient's repository calls send none).
    else if (request.headers['content-type'] === undefined && request.headers['content-length'] !== '0') request.headers['content-type'] = 'application/json';
  });
}
