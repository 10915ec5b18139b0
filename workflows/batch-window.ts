// Pure date arithmetic for batch windows (UTC), safe to run inside workflows.
import type { Period } from '../src/batch/job.ts';

export interface Window {
  from: string;
  to: string;
}

function startOf(period: Period, t: Date): Date {
  const d = new Date(Date.UTC(t.getUTCFullYear(), t.getUTCMonth(), period === 'month' ? 1 : t.getUTCDate(), period === 'hour' ? t.getUTCHours() : 0));
  return d;
}

/** The whole period before the one containing `at`: the course's monthly job run on 2 March scores February. */
export function previousPeriod(period: Period, at: Date): Window {
  const to = startOf(period, at);
  const from = new Date(to);
  if (period === 'month') from.setUTCMonth(from.getUTCMonth() - 1);
  else if (period === 'day') from.setUTCDate(from.getUTCDate() - 1);
  else from.setUTCHours(from.getUTCHours() - 1);
  return { from: from.toISOString(), to: to.toISOString() };
}

/** Compact window text for workflow ids: 2024-02-01T00:00:00.000Z → 20240201T0000Z. */
export function windowLabel(w: Window): string {
  const short = (iso: string) => iso.replace(/[-:]/g, '').replace(/\d\d\.\d{3}Z$/, 'Z');
  return `${short(w.from)}-${short(w.to)}`;
}

export function batchWorkflowId(job: string, w: Window): string {
  return `batch-${job}-${windowLabel(w)}`;
}
