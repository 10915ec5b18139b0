// What `mldeploy dev` shows of the streaming fan-out: the course's ride_started event,
// emitted and waited on, with the decision it got.
import type { EventIngress } from './ingress.ts';

export const DEMO_EVENT = { type: 'ride_started', payload: { ride: { PULocationID: 130, DOLocationID: 205, trip_distance: 3.66 }, ride_id: 256 } };

export async function demoEvent(ingress: EventIngress, waitMs: number): Promise<string> {
  const result = await ingress.emit(DEMO_EVENT, { wait: true, waitMs });
  if (result.status !== 'done') return `demo event ${result.eventId}: no decision within ${waitMs} ms (workflow ${result.workflowId})`;
  const d = result.decision;
  const predictions = Object.entries(d.predictions)
    .map(([consumer, value]) => `${consumer} ${value.toFixed(2)}`)
    .join(', ');
  return `demo event ride_started ${d.eventId}: ${d.status}, action ${d.action ?? 'none'} (${predictions}; ${d.reasons.join('; ')})`;
}
