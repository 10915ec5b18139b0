// GET /v1/runs/{runId}/report: a batch or monitor run's drift report (docs/monitoring.md) as one
// self-contained HTML page, behind the same auth hook as every other route.
import type { FastifyInstance } from 'fastify';
import { NoReportError, runReportHtml } from '../monitoring/run-report.ts';
import { UnknownRunError } from '../monitoring/store.ts';
import type { ServeContext } from './context.ts';
import { HttpError } from './errors.ts';

export async function reportRoutes(app: FastifyInstance, ctx: ServeContext): Promise<void> {
  app.get<{ Params: { runId: string } }>(
    '/v1/runs/:runId/report',
    {
      schema: {
        tags: ['Monitoring'],
        summary: "A batch or monitor run's drift report (HTML)",
        params: { type: 'object', required: ['runId'], properties: { runId: { type: 'string', minLength: 1, maxLength: 200 } } },
        response: { 200: { type: 'string', description: 'text/html' }, 400: { $ref: 'Error#' }, 404: { $ref: 'Error#' }, 414: { $ref: 'Error#' } },
      },
    },
    async (request, reply) => {
      try {
        const html = await runReportHtml(ctx.pool, request.params.runId);
        return reply.type('text/html; charset=utf-8').send(html);
      } catch (err) {
        if (err instanceof UnknownRunError || err instanceof NoReportError) throw new HttpError(404, err.message);
        throw err;
      }
    },
  );
}
