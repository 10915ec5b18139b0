// Where a batched event's time goes: from a partition workflow's histories, how long each
// kind of activity waited in its task queue (scheduled → started) and ran (started →
// completed), and how long workflow tasks waited and ran. Read after a benchmark run.
import type { Client } from '@temporalio/client';
import proto from '@temporalio/proto';

const { temporal } = proto;

const EventType = temporal.api.enums.v1.EventType;
type HistoryEvent = proto.temporal.api.history.v1.IHistoryEvent;

const ms = (e: HistoryEvent) => Number(e.eventTime!.seconds) * 1000 + Math.floor((e.eventTime!.nanos ?? 0) / 1e6);

function summary(samples: number[]): string {
  if (samples.length === 0) return '–';
  const sorted = [...samples].sort((a, b) => a - b);
  const mean = sorted.reduce((s, x) => s + x, 0) / sorted.length;
  return `${mean.toFixed(0)} ms mean, p95 ${sorted[Math.min(sorted.length - 1, Math.floor(0.95 * sorted.length))].toFixed(0)} ms (n=${sorted.length})`;
}

/** Queue wait and run time per activity type and for workflow tasks, in every run of `workflowId`, for tasks that ended after `since`. */
export async function partitionTimeline(client: Client, workflowId: string, since: Date): Promise<string[]> {
  const waits = new Map<string, number[]>();
  const runs = new Map<string, number[]>();
  const kinds = new Map<string, number>();
  const push = (map: Map<string, number[]>, key: string, value: number) => (map.get(key) ?? map.set(key, []).get(key)!).push(value);
  for await (const wf of client.workflow.list({ query: `WorkflowId = "${workflowId}"` })) {
    if (wf.closeTime && wf.closeTime < since) continue;
    const history = await client.workflow.getHandle(workflowId, wf.runId).fetchHistory();
    const byId = new Map<number, HistoryEvent>();
    for (const e of history.events ?? []) {
      byId.set(Number(e.eventId), e);
      if (ms(e) < since.getTime()) continue;
      const kind = EventType[e.eventType!].replace(/^EVENT_TYPE_/, '').toLowerCase();
      kinds.set(kind, (kinds.get(kind) ?? 0) + 1);
      if (e.eventType === EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED) {
        const scheduled = byId.get(Number(e.activityTaskStartedEventAttributes!.scheduledEventId))!;
        push(waits, scheduled.activityTaskScheduledEventAttributes!.activityType!.name!, ms(e) - ms(scheduled));
      } else if (e.eventType === EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED) {
        const started = byId.get(Number(e.activityTaskCompletedEventAttributes!.startedEventId))!;
        const scheduled = byId.get(Number(e.activityTaskCompletedEventAttributes!.scheduledEventId))!;
        push(runs, scheduled.activityTaskScheduledEventAttributes!.activityType!.name!, ms(e) - ms(started));
      } else if (e.eventType === EventType.EVENT_TYPE_WORKFLOW_TASK_STARTED) {
        push(waits, 'workflow task', ms(e) - ms(byId.get(Number(e.workflowTaskStartedEventAttributes!.scheduledEventId))!));
      } else if (e.eventType === EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED) {
        push(runs, 'workflow task', ms(e) - ms(byId.get(Number(e.workflowTaskCompletedEventAttributes!.startedEventId))!));
      }
    }
  }
  const lines = [...new Set([...waits.keys(), ...runs.keys()])].map((kind) => `  ${kind}: queued ${summary(waits.get(kind) ?? [])}; ran ${summary(runs.get(kind) ?? [])}`);
  const ranges = runs.get('scoreConsumerBatch')?.length;
  const counts = [...kinds].sort((a, b) => b[1] - a[1]).map(([kind, n]) => `${kind} ${ranges ? (n / ranges).toFixed(2) : n}`);
  lines.push(`  history events${ranges ? ' per consumer batch' : ''}: ${counts.join(', ')}`);
  return lines;
}
