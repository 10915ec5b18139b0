// The Open Inference Protocol's model repository extension over HTTP (Triton's
// `model_repository` extension, what tritonclient's get_model_repository_index, load_model and
// unload_model call). The repository is the registry; load and unload act on this process only:
// - POST /v2/repository/index: every registered version with its state here (READY, LOADING,
//   UNAVAILABLE with the reason); `{"ready": true}` lists the loaded ones only.
// - POST /v2/repository/models/{name}/load: loads the version the name resolves to (or
//   parameters.version) and keeps it loaded, whatever the idle sweep says, until unloaded.
// - POST /v2/repository/models/{name}/unload: releases the model's loaded versions (or
//   parameters.version) here; the next call that needs one loads it again. A version that
//   answers the default model (readiness needs it) stays, with a 409.
// The pinned gRPC proto (KServe's) declares no repository RPCs, so these are HTTP only.
import type { FastifyInstance } from 'fastify';
import { validateModelName } from '../registry/refs.ts';
import { RequiredModelError } from '../registry/resolver.ts';
import { ModelNotFoundError } from '../registry/store.ts';
import type { ServeContext } from './context.ts';
import { badRequest, errorResponses, HttpError } from './errors.ts';

const NAME_PATTERN = '^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$';
const VERSION_PATTERN = '^0*[1-9][0-9]{0,8}$';

const OpenValue = { anyOf: [{ type: 'boolean' }, { type: 'number' }, { type: 'string' }] } as const;

const IndexRequestSchema = {
  anyOf: [
    { type: 'object', additionalProperties: false, properties: { ready: { type: 'boolean' } } },
    // tritonclient.http posts an empty body.
    { type: 'null' },
  ],
} as const;

const IndexEntrySchema = {
  type: 'object',
  required: ['name', 'version', 'state'],
  properties: {
    name: { type: 'string' },
    version: { type: 'string' },
    state: { type: 'string', enum: ['READY', 'LOADING', 'UNAVAILABLE'] },
    reason: { type: 'string' },
  },
} as const;

/** Load and unload parameters: a version of ours; Triton's config and file: overrides are refused by name; other scalars are accepted and ignored (unload_dependents). */
const ControlRequestSchema = {
  anyOf: [
    {
      type: 'object',
      additionalProperties: false,
      properties: {
        parameters: {
          type: 'object',
          propertyNames: { not: { enum: ['__proto__', 'constructor'] } },
          additionalProperties: OpenValue,
          properties: {
            version: {
              anyOf: [
                { type: 'string', pattern: VERSION_PATTERN },
                { type: 'integer', minimum: 1, maximum: 999_999_999 },
              ],
            },
          },
        },
      },
    },
    { type: 'null' },
  ],
} as const;

const ControlResponseSchema = {
  type: 'object',
  required: ['name', 'versions', 'state'],
  properties: { name: { type: 'string' }, versions: { type: 'array', items: { type: 'string' } }, state: { type: 'string', enum: ['READY', 'UNAVAILABLE'] } },
} as const;

const NameParams = { type: 'object', required: ['name'], properties: { name: { type: 'string', pattern: NAME_PATTERN } } } as const;

interface ControlBody {
  parameters?: Record<string, unknown> & { version?: string | number };
}

function versionOf(body: ControlBody | null): number | undefined {
  const parameters = body?.parameters ?? {};
  for (const key of Object.keys(parameters)) {
    if (key === 'config' || key.startsWith('file:'))
      throw badRequest(`parameter '${key}': mldeploy loads registered versions only (mldeploy models register); it takes no model configuration or files`);
  }
  return parameters.version === undefined ? undefined : Number(parameters.version);
}

const OPTIONAL_BODIES = ['/v2/repository/index', '/v2/repository/models/{name}/load', '/v2/repository/models/{name}/unload'];

type OpenApiDocument = { paths?: Record<string, { post?: { requestBody?: { required?: boolean } } }> };

export function v2RepositoryRoutes(app: FastifyInstance, ctx: ServeContext, tags: string[]): void {
  // @fastify/swagger marks every body schema's request body required; these take none too
  // (tritonclient sends none), so the document says so. It is built once and cached, so the
  // change made here, once every route is in, is what /openapi.json serves.
  app.addHook('onReady', async () => {
    const swagger = (app as unknown as { swagger?: () => OpenApiDocument }).swagger;
    const doc = swagger?.call(app);
    for (const path of OPTIONAL_BODIES) {
      const body = doc?.paths?.[path]?.post?.requestBody;
      if (body) body.required = false;
    }
  });

  app.post<{ Body: { ready?: boolean } | null }>(
    '/v2/repository/index',
    {
      schema: {
        tags,
        summary: 'Repository index: every registered version and its state in this process (READY, LOADING or UNAVAILABLE); {"ready": true} lists the loaded ones',
        body: IndexRequestSchema,
        response: { 200: { type: 'array', items: IndexEntrySchema }, ...errorResponses },
      },
    },
    async (request) => {
      const states = ctx.resolver.states();
      const index = (await ctx.store.list()).map((v) => {
        const state = states.get(`${v.name}@${v.version}`);
        return state
          ? { name: v.name, version: String(v.version), state }
          : { name: v.name, version: String(v.version), state: 'UNAVAILABLE', reason: 'not loaded in this process' };
      });
      return request.body?.ready ? index.filter((e) => e.state === 'READY') : index;
    },
  );

  const control = { tags, params: NameParams, body: ControlRequestSchema, response: { 200: ControlResponseSchema, ...errorResponses, 409: { $ref: 'Error#' } } };

  app.post<{ Params: { name: string }; Body: ControlBody | null }>(
    '/v2/repository/models/:name/load',
    { schema: { ...control, summary: 'Load the version the name resolves to (or parameters.version) in this process and keep it loaded until unloaded' } },
    async (request) => {
      const { name } = request.params;
      validateModelName(name);
      const wanted = versionOf(request.body);
      const version = wanted ?? (await ctx.resolver.resolve(name)).version;
      if (wanted !== undefined) await ctx.store.get(name, wanted);
      await ctx.resolver.pin({ name, version });
      return { name, versions: [String(version)], state: 'READY' };
    },
  );

  app.post<{ Params: { name: string }; Body: ControlBody | null }>(
    '/v2/repository/models/:name/unload',
    { schema: { ...control, summary: "Release the model's loaded versions (or parameters.version) in this process; a version the default model needs stays (409)" } },
    async (request) => {
      const { name } = request.params;
      validateModelName(name);
      const wanted = versionOf(request.body);
      const registered = await ctx.store.versionNumbers(name);
      if (registered.length === 0) throw new ModelNotFoundError(`model ${name} does not exist (no versions registered)`);
      if (wanted !== undefined && !registered.includes(wanted)) throw new ModelNotFoundError(`model ${name}@${wanted} does not exist`);
      const loaded = [...ctx.resolver.states().keys()].filter((key) => key.startsWith(`${name}@`)).map((key) => Number(key.slice(name.length + 1)));
      const targets = wanted !== undefined ? loaded.filter((v) => v === wanted) : loaded;
      try {
        for (const version of targets) ctx.resolver.unload({ name, version });
      } catch (err) {
        if (err instanceof RequiredModelError) throw new HttpError(409, err.message);
        throw err;
      }
      return { name, versions: targets.sort((a, b) => a - b).map(String), state: 'UNAVAILABLE' };
    },
  );
}
