// The Open Inference Protocol v2 (KServe / Triton REST), JSON encoding. The binary tensor
// extension is not supported: with tritonclient.http, pass binary_data=False to
// InferInput.set_data_from_numpy and InferRequestedOutput.
import type { FastifyInstance, FastifyReply } from 'fastify';
import { validateModelName } from '../registry/refs.ts';
import type { LoadedModel } from '../registry/runtime.ts';
import { badRequest, ClientGoneError, errorResponses, HttpError, untilClientGone } from './errors.ts';
import type { ServeContext } from './context.ts';
import { datatypeOf, fromTensor, toFeeds, v2Shape, type V2InputTensor } from './v2-tensors.ts';

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

const InferRequestSchema = {
  type: 'object',
  required: ['inputs'],
  properties: {
    id: { type: 'string', maxLength: 256 },
    parameters: { type: 'object' },
    inputs: {
      type: 'array',
      minItems: 1,
      maxItems: 256,
      items: {
        type: 'object',
        required: ['name', 'shape', 'datatype', 'data'],
        properties: {
          name: { type: 'string' },
          shape: { type: 'array', maxItems: 8, items: { type: 'integer', minimum: 0 } },
          datatype: { type: 'string', enum: DATATYPE_ENUM },
          parameters: { type: 'object' },
          data: { type: 'array' },
        },
      },
    },
    outputs: {
      type: 'array',
      maxItems: 256,
      items: { type: 'object', required: ['name'], properties: { name: { type: 'string' }, parameters: { type: 'object' } } },
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

const NameParams = { type: 'object', required: ['name'], properties: { name: { type: 'string' }, version: { type: 'string', pattern: '^[0-9]{1,9}$' } } } as const;

interface ModelParams {
  name: string;
  version?: string;
}

interface InferBody {
  id?: string;
  inputs: V2InputTensor[];
  outputs?: Array<{ name: string }>;
}

export async function v2Routes(app: FastifyInstance, ctx: ServeContext): Promise<void> {
  const tags = ['Open Inference Protocol v2'];

  async function modelFor(params: ModelParams): Promise<LoadedModel> {
    validateModelName(params.name);
    return ctx.plane.model(params.version ? `${params.name}@${Number(params.version)}` : params.name);
  }

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
      extensions: [],
    }),
  );

  const healthResponse = {
    200: { type: 'object', properties: { live: { type: 'boolean' }, ready: { type: 'boolean' } } },
    503: { type: 'object', properties: { ready: { type: 'boolean' } } },
  };
  app.get('/v2/health/live', { schema: { tags, summary: 'Liveness', response: healthResponse } }, async () => ({ live: true }));
  app.get('/v2/health/ready', { schema: { tags, summary: 'Readiness (the default models are loaded)', response: healthResponse } }, async (_request, reply) =>
    reply.code(ctx.resolver.ready() ? 200 : 503).send({ ready: ctx.resolver.ready() }),
  );

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

  const ready = async (request: { params: ModelParams }) => {
    const model = await modelFor(request.params);
    return { name: model.name, version: String(model.version), ready: true };
  };
  const readySchema = {
    tags,
    summary: 'Model readiness (loads the model)',
    params: NameParams,
    response: { 200: { type: 'object', properties: { name: { type: 'string' }, version: { type: 'string' }, ready: { type: 'boolean' } } }, ...errorResponses },
  };
  app.get<{ Params: ModelParams }>('/v2/models/:name/ready', { schema: readySchema }, ready);
  app.get<{ Params: ModelParams }>('/v2/models/:name/versions/:version/ready', { schema: readySchema }, ready);

  const infer = async (request: { params: ModelParams; body: InferBody; served?: unknown }, reply: FastifyReply) => {
    const model = await modelFor(request.params);
    request.served = model;
    const { feeds, rows } = toFeeds(request.body.inputs, model.metadata.inputs, ctx.config.maxRecords);
    const known = model.metadata.outputs.map((o) => o.name);
    const names = request.body.outputs?.map((o) => o.name) ?? known;
    for (const n of names) if (!known.includes(n)) throw badRequest(`the model has no output '${n}' (outputs: ${known.join(', ')})`);
    const wanted = [...new Set(names)];
    let tensors;
    try {
      tensors = await ctx.plane.tensors(model, { feeds, rows, outputs: wanted }, untilClientGone(reply));
    } catch (err) {
      if ((err as Error).name === 'AbortError' || err instanceof ClientGoneError) throw err;
      // The tensors match the declared metadata; what onnxruntime still rejects is the caller's data.
      throw badRequest(`the model rejected the inputs: ${(err as Error).message.split('\n')[0]}`);
    }
    const outputs = wanted.map((n) => fromTensor(n, tensors[n]));
    return { model_name: model.name, model_version: String(model.version), ...(request.body.id !== undefined ? { id: request.body.id } : {}), outputs };
  };
  const inferSchema = {
    tags,
    summary: 'Run the model on its raw input tensors (JSON; tritonclient.http needs binary_data=False)',
    params: NameParams,
    body: InferRequestSchema,
    response: { 200: InferResponseSchema, ...errorResponses },
  };
  app.post<{ Params: ModelParams; Body: InferBody }>('/v2/models/:name/infer', { schema: inferSchema }, infer);
  app.post<{ Params: ModelParams; Body: InferBody }>('/v2/models/:name/versions/:version/infer', { schema: inferSchema }, infer);
}

/**
 * tritonclient.http sends its JSON without a Content-Type; binary-extension requests
 * carry Inference-Header-Content-Length and are refused with a clear message.
 */
export function v2ContentTypes(app: FastifyInstance): void {
  app.addHook('onRequest', async (request) => {
    if (!request.url.startsWith('/v2/')) return;
    if (request.headers['inference-header-content-length'] !== undefined) {
      throw new HttpError(400, 'the binary tensor extension is not supported; send JSON (tritonclient.http: binary_data=False)');
    }
    if (request.method === 'POST' && request.headers['content-type'] === undefined) request.headers['content-type'] = 'application/json';
  });
}
