// A batch or monitor run's report page, or why there is none: the one lookup behind
// GET /v1/runs/{runId}/report and `mldeploy report`.
import type { Pool } from '../db/pool.ts';
import { renderReport } from './report-html.ts';
import { loadRunDrift } from './store.ts';

export class NoReportError extends Error {
  override name = 'NoReportError';
}

export async function runReportHtml(pool: Pool, runId: string): Promise<string> {
  const run = await loadRunDrift(pool, runId);
  if (run.drift) return renderReport(run, run.drift);
  const ref = `${run.model.name}@${run.model.version}`;
  if (run.kind === 'monitor') {
    if (run.status === 'no-data') {
      throw new NoReportError(
        `monitor run ${run.runId} has no drift report: no prediction of ${ref} was recorded in its window ${run.window.from} – ${run.window.to} (is the model served, and are its inputs kept? see docs/monitoring.md)`,
      );
    }
    throw new NoReportError(`monitor run ${run.runId} has no drift report yet: it is ${run.status}`);
  }
  if (!run.hasReference) {
    throw new NoReportError(
      `batch run ${run.runId} has no drift report: model ${ref} had no reference profile when it ran (build one with \`mldeploy models profile ${ref} --source <table> --from … --to …\`, then score again)`,
    );
  }
  throw new NoReportError(`batch run ${run.runId} has no drift report yet: it is ${run.status}; the report is written when the run finishes`);
}

/** Where the web service serves a run's report. */
export function reportUrl(publicUrl: string, runId: string): string {
  return `${publicUrl}/v1/runs/${encodeURIComponent(runId)}/report`;
}
