// Record-level prediction routes: the course-compatible POST /predict, and the generic
// POST /v1/models/{ref}/predict for one record or a batch.
import type { FastifyInstance } from 'fastify';
import { outcomeOf, type RecordOutcome } from '../inference/data-plane.ts';
import type { FeatureRecord, RecordError } from '../registry/features.ts';
import { badRequest, errorResponses, tooLongResponse, untilClientGone } from './errors.ts';
import type { ServeContext } from './context.ts';

const EXAMPLE_RIDE = { PULocationID: 10, DOLocationID: 50, trip_distance: 40 };
const MAX_LISTED_ERRORS = 20;
/** name, name@alias or name@version, as src/registry/refs.ts accepts them; versions are PostgreSQL integers (9 digits here). */
const MODEL_REF_PATTERN = '^[A-Za-z0-9][A-Za-z0-9._-]{0,127}(@([A-Za-z][A-Za-z0-9_-]{0,63}|0*[1-9][0-9]{0,8}))?$';

// Fields are checked against the model's feature spec, which can change with a promotion,
// so the schema only requires an object; the 400 names the offending field.
const RecordSchema = {
  type: 'object',
  description: "One record with the fields of the model's feature spec",
  additionalProperties: true,
  examples: [EXAMPLE_RIDE],
} as const;

function rejected(errors: RecordError[], batch: boolean) {
  const first = errors[0];
  const message = batch ? `record ${first.index}: ${first.reason} (${errors.length} record(s) rejected)` : first.reason;
  return badRequest(message, { errors: errors.slice(0, MAX_LISTED_ERRORS) });
}

export async function predictRoutes(app: FastifyInstance, ctx: ServeContext): Promise<void> {
  const { plane, config } = ctx;

  app.post<{ Body: FeatureRecord }>(
    '/predict',
    {
      schema: {
        tags: ['Predictions'],
        summary: `Predict the duration of one ride with ${config.defaultModel}`,
        body: RecordSchema,
        response: {
          200: {
            type: 'object',
            required: ['duration', 'model_version'],
            properties: { duration: { type: 'number', description: 'minutes' }, model_version: { type: 'integer' } },
          },
          ...errorResponses,
        },
      },
    },
    async (request) => {
      const model = await plane.model(config.defaultModel);
      request.served = model;
      const outcome = await plane.one(model, request.body);
      if (outcome.error) throw rejected([outcome.error], false);
      ctx.predictionLog?.add(request.id, model, [request.body], [outcome.prediction]);
      return { duration: outcome.prediction, model_version: model.version };
    },
  );

  app.post<{ Params: { ref: string }; Body: FeatureRecord | FeatureRecord[] }>(
    '/v1/models/:ref/predict',
    {
      schema: {
        tags: ['Predictions'],
        summary: 'Score one record or a list of records with a model (name, name@alias or name@version)',
        params: { type: 'object', required: ['ref'], properties: { ref: { type: 'string', maxLength: 200, pattern: MODEL_REF_PATTERN, examples: ['trip-duration@production'] } } },
        body: { anyOf: [RecordSchema, { type: 'array', maxItems: config.maxRecords, items: RecordSchema }] },
        response: {
          200: {
            type: 'object',
            description:
              "A regression model answers model, version and predictions. A classifier adds each record's label, its probability of each class keyed by class label, and the class labels.",
            required: ['model', 'version', 'predictions'],
            properties: {
              model: { type: 'string' },
              version: { type: 'integer' },
              predictions: {
                type: 'array',
                items: { type: 'number' },
                description: "Classifiers: the label when class labels are numbers, otherwise the label's position in classes",
              },
              labels: { type: 'array', items: { anyOf: [{ type: 'string' }, { type: 'integer' }] } },
              probabilities: { type: 'array', items: { type: 'object', additionalProperties: { type: 'number' } } },
              classes: { type: 'array', items: { anyOf: [{ type: 'string' }, { type: 'integer' }] } },
            },
          },
          ...errorResponses,
          ...tooLongResponse,
        },
      },
    },
    async (request, reply) => {
      const model = await plane.model(request.params.ref);
      request.served = model;
      const batch = Array.isArray(request.body);
      const records = batch ? (request.body as FeatureRecord[]) : [request.body as FeatureRecord];
      let outcomes: RecordOutcome[];
      if (batch) {
        const result = await plane.many(model, records, untilClientGone(reply));
        if (result.errors.length) throw rejected(result.errors, true);
        outcomes = records.map((_, i) => outcomeOf(result, i)!);
      } else {
        const outcome = await plane.one(model, records[0]);
        if (outcome.error) throw rejected([outcome.error], false);
        outcomes = [outcome];
      }
      const predictions = outcomes.map((o) => o.prediction!);
      ctx.predictionLog?.add(request.id, model, records, predictions);
      const classes = model.spec.classifier && outcomes[0]?.classification ? Object.keys(outcomes[0].classification.probabilities) : undefined;
      if (!classes) return { model: model.name, version: model.version, predictions };
      return {
        model: model.name,
        version: model.version,
        predictions,
        labels: outcomes.map((o) => o.classification!.label),
        probabilities: outcomes.map((o) => o.classification!.probabilities),
        // A version without stored class labels numbers its probability columns 0..k-1.
        classes: model.spec.classifier!.classes ?? classes.map((_, k) => k),
      };
    },
  );
}
