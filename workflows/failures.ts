// The reason a workflow records when an activity gave up: the cause's message, or a plain
// "no result in time" for timeouts (what a decision's reasons and the Web UI show).
import { ActivityFailure, ApplicationFailure, TimeoutFailure } from '@temporalio/workflow';

export function failureReason(err: unknown): string {
  const cause = err instanceof ActivityFailure ? err.cause : err;
  if (cause instanceof TimeoutFailure) return `no result in time (${cause.message})`;
  if (cause instanceof ApplicationFailure) return cause.message;
  return cause instanceof Error ? cause.message : String(cause);
}
