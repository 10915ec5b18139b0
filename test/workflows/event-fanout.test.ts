// eventFanout's branches with mocked activities on a local test server (see support.ts for
// why timeouts are short rather than skipped): required vs optional consumer, a consumer
// that times out, a rejected plan, and a callback that fails for good.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import type { eventFanout } from '../../workflows/event-fanout.ts';
import { consumer, createLocalEnv, fanoutActivities, startWorker, streamEvent, unique, type EventPlans } from './support.ts';

let env: TestWorkflowEnvironment;
const plans: EventPlans = new Map();
const { main, consumerActivities, records } = fanoutActivities(plans);
const taskQueue = unique('fanout');
const consumerQueue = unique('consumer');
const workers: { stop(): Promise<void> }[] = [];

beforeAll(async () => {
  env = await createLocalEnv();
  workers.push(await startWorker(env, taskQueue, main), await startWorker(env, consumerQueue, consumerActivities, false));
});
afterAll(async () => {
  for (const w of workers) await w.stop();
  await env?.teardown();
});

async function run(id: string, plan: EventPlans extends Map<string, infer P> ? P : never, callbackUrl?: string) {
  plans.set(id, plan);
  return env.client.workflow.execute<typeof eventFanout>('eventFanout', { taskQueue, workflowId: `event-ride-${id}`, args: [streamEvent(id, callbackUrl)] });
}

describe('eventFanout', () => {
  it("decides from every consumer's prediction", async () => {
    const id = unique('ok');
    const decision = await run(id, { consumers: [consumer('risk', 'ok-0.9', true, consumerQueue), consumer('eta', 'ok-12', false, consumerQueue)] });
    expect(decision).toMatchObject({ status: 'decided', action: 'review', predictions: { risk: 0.9, eta: 12 }, missing: [], reasons: ['risk above 0.5'] });
  });

  it('a required consumer that fails fails the decision', async () => {
    const id = unique('required');
    const decision = await run(id, { consumers: [consumer('risk', 'broken', true, consumerQueue), consumer('eta', 'ok-12', false, consumerQueue)] });
    expect(decision).toMatchObject({ status: 'failed', action: null, predictions: { eta: 12 }, missing: ['risk'] });
    expect(decision.reasons).toEqual(["required consumer 'risk' failed: model risk-model failed"]);
  });

  it('an optional consumer that fails is noted, and the policy decides without it', async () => {
    const id = unique('optional');
    const decision = await run(id, { consumers: [consumer('risk', 'ok-0.1', true, consumerQueue), consumer('eta', 'broken', false, consumerQueue)] });
    expect(decision).toMatchObject({ status: 'decided', action: 'approve', predictions: { risk: 0.1 }, missing: ['eta'] });
    expect(decision.reasons).toEqual(['no rule matched', "optional consumer 'eta' missing: model eta-model failed"]);
  });

  it('a consumer that answers too late counts as missing, with a timeout reason', async () => {
    const id = unique('timeout');
    const started = Date.now();
    const decision = await run(id, { consumers: [consumer('risk', 'ok-0.7', true, consumerQueue), consumer('eta', 'slow', false, consumerQueue, 300)] });
    expect(Date.now() - started).toBeLessThan(5_000);
    expect(decision).toMatchObject({ status: 'decided', action: 'review', missing: ['eta'] });
    const eta = records.get(id)!.outcomes.find((o) => o.consumer === 'eta');
    expect(eta).toMatchObject({ status: 'missing', required: false });
    expect(eta!.status === 'missing' && eta!.reason).toMatch(/^no result in time/);
  });

  it('a rejected plan is the decision, and no consumer runs', async () => {
    const id = unique('rejected');
    const decision = await run(id, { rejected: ["trip_distance must be a number, got 'x'"] });
    expect(decision).toMatchObject({ status: 'rejected', action: null, reasons: ["trip_distance must be a number, got 'x'"] });
    expect(records.get(id)).toBeUndefined(); // neither decided nor delivered
    const history = await env.client.workflow.getHandle(`event-ride-${id}`).fetchHistory();
    expect(history.events!.filter((e) => e.activityTaskScheduledEventAttributes)).toHaveLength(0);
  });

  it('delivers the decision to the callback', async () => {
    const id = unique('callback');
    const decision = await run(id, { consumers: [consumer('risk', 'ok-0.2', true, consumerQueue)] }, 'http://producer.test/decisions');
    expect(decision.status).toBe('decided');
    expect(records.get(id)).toMatchObject({ delivered: 1, deliveryFailures: 0 });
  });

  it('a callback that fails for good leaves the decision standing', async () => {
    const id = unique('callback-fail');
    const decision = await run(id, { consumers: [consumer('risk', 'ok-0.2', true, consumerQueue)] }, 'http://producer.test/fail');
    expect(decision).toMatchObject({ status: 'decided', action: 'approve' });
    expect(records.get(id)).toMatchObject({ delivered: 0, deliveryFailures: 1 });
  });
});
