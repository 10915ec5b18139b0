// A prediction-stream monitor over real stream consumers (a dev server, PostgreSQL, the
// event, partition and consumer workers of a stream rig): rides with longer trips and another
// PU/DO mix are emitted in batched and in per-event mode; the consumers keep the monitored
// model's features (sample rate 1) and not the other models'; a triggered run of the monitor
// flags the drift.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ActivityDeps } from '../../activities/deps.ts';
import { createMonitor, deleteMonitor } from '../../src/monitoring/monitors.ts';
import { StreamInputSampler } from '../../src/monitoring/sampling.ts';
import { parseModelRef } from '../../src/registry/refs.ts';
import { openTestEnv, startTestWorker, type TestEnv } from '../helpers.ts';
import { ridesTable } from './batch-support.ts';
import { waitFor } from './serve-support.ts';
import { profileJanuary, shiftMarch, triggerMonitorRun } from './monitoring-support.ts';
import { inParallel, openStreamRig, registerRideModels, rideRoute, type ExampleModels, type StreamTestRig } from './stream-env.ts';

const EVENTS_PER_MODE = 150;

let env: TestEnv;
let rig: StreamTestRig;
let models: ExampleModels;
let shifted: Array<Record<string, unknown>>;
let worker: Awaited<ReturnType<typeof startTestWorker>>;

const nameOf = (ref: string) => parseModelRef(ref).name;
const samples = async (ref: string) =>
  Number((await env.pool.query("SELECT count(*) FROM prediction_log WHERE model_name = $1 AND source = 'stream' AND sampled", [nameOf(ref)])).rows[0].count);

beforeAll(async () => {
  env = await openTestEnv();
  models = await registerRideModels(env);
  const tables = await ridesTable(env.pool, { '2024-01': 5_000, '2024-03': EVENTS_PER_MODE * 2 });
  await shiftMarch(env.pool, tables.table);
  const duration = await env.store.resolve(models.duration);
  await profileJanuary(env, tables.view, [duration]);
  shifted = (await env.pool.query(`SELECT "PULocationID", "DOLocationID", trip_distance FROM ${tables.view} WHERE lpep_pickup_datetime >= '2024-03-01' ORDER BY ride_id`)).rows;

  // The same consumers serve a batched type and a per-event type.
  rig = await openStreamRig(
    env,
    (tag) => {
      const route = rideRoute(models, tag);
      return { ride_started: { ...route, mode: 'batched', partitions: 2 }, ride_requested: route };
    },
    { startConsumers: false },
  );
  // As `mldeploy worker` builds its consumers: with the process's sampler (src/worker.ts).
  (rig.deps as typeof rig.deps & Pick<ActivityDeps, 'streamSampler'>).streamSampler = new StreamInputSampler(env.pool, 1);
  worker = await startTestWorker(env);
}, 120_000);

afterAll(async () => {
  await rig?.close();
  await worker?.stop();
  await env?.close();
});

describe('prediction-stream monitors', () => {
  it("flag shifted stream traffic from the consumers' sampled features, in batched and per-event mode", async () => {
    // Monitor runs go to a worker with every activity, as `mldeploy worker` has.
    const monitor = await createMonitor(env.pool, env.store, env.client, { ref: models.duration, everyMs: 3_600_000, source: 'prediction-stream', taskQueue: worker.taskQueue });
    await Promise.all(Object.values(rig.consumers).map((c) => c.start()));
    const ingress = rig.ingress();
    const events = shifted.map((ride, i) => ({ type: i % 2 === 0 ? 'ride_started' : 'ride_requested', id: `m-${i}`, payload: { ride_id: `m-${i}`, ride } }));
    await inParallel(events, 20, (event) => ingress.emit(event));
    await waitFor(async () => (await samples(models.duration)) === events.length, 'the sampled features of every event', 120_000);
    expect(await samples(models.fare)).toBe(0);
    expect(await samples(models.tip)).toBe(0);
    const kinds = await env.pool.query(
      "SELECT split_part(request_id, ':', 1) AS type, count(*)::int AS n FROM prediction_log WHERE model_name = $1 AND source = 'stream' GROUP BY 1 ORDER BY 1",
      [nameOf(models.duration)],
    );
    expect(kinds.rows).toEqual([
      { type: 'ride_requested', n: EVENTS_PER_MODE },
      { type: 'ride_started', n: EVENTS_PER_MODE },
    ]);

    const { result, attribute } = await triggerMonitorRun(env.client, env.pool, monitor.monitorId, [nameOf(models.duration)]);
    expect(result).toMatchObject({ status: 'finished', rows: events.length, drift: { drifted: true } });
    expect(result.drift!.features.sort()).toEqual(['PU_DO', 'trip_distance']);
    expect(attribute).toBe('drifted');
    await deleteMonitor(env.pool, env.client, monitor.monitorId);
  }, 240_000);
});
