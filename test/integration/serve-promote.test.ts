// Hot updates: promoting another version under constant load switches the served version
// within seconds, with no failed request and no answer from one version labelled as another.
import { afterAll, beforeAll, expect, it } from 'vitest';
import { ModelCache } from '../../src/registry/runtime.ts';
import { openTestEnv, type TestEnv } from '../helpers.ts';
import { RIDE, freshName, registerAs, serveConfig, startServer, waitFor, type TestServer } from './serve-support.ts';

let env: TestEnv;
let server: TestServer | undefined;
beforeAll(async () => {
  env = await openTestEnv();
});
afterAll(async () => {
  await server?.close();
  await env.close();
});

it('a promotion under load switches versions with zero errors, and each answer matches the version it names', async () => {
  const name = freshName('hot');
  await registerAs(env, name, 'trip-duration', 'production');
  // Version 2 is a different model (fare), so an answer from one version labelled as the other shows.
  await registerAs(env, name, 'fare');
  server = await startServer(env, serveConfig({ defaultModel: `${name}@production`, aliasPollMs: 200 }));
  // Expected values come from a cache of their own, so the server still has to load version 2 under load.
  const reference = new ModelCache(env.store, 1);
  const expected = new Map<number, number>();
  for (const version of [1, 2]) expected.set(version, (await (await reference.get({ name, version })).predict([RIDE])).predictions[0]!);
  await reference.release();
  expect(expected.get(1)).not.toBe(expected.get(2));

  const answers: Array<{ status: number; version?: number; value?: number; v1?: number }> = [];
  let stop = false;
  const client = async () => {
    while (!stop) {
      const [a, b] = await Promise.all([
        server!.app.inject({ method: 'POST', url: '/predict', payload: RIDE }),
        server!.app.inject({ method: 'POST', url: `/v1/models/${name}/predict`, payload: [RIDE, RIDE] }),
      ]);
      answers.push({ status: a.statusCode, version: a.json().model_version, value: a.json().duration });
      answers.push({ status: b.statusCode, version: b.json().version, value: b.json().predictions?.[0], v1: b.json().predictions?.[1] });
    }
  };
  const clients = Array.from({ length: 6 }, client);
  await waitFor(() => answers.length > 200, 'load before the promotion');
  await env.store.promote(name, 2, 'production');
  await waitFor(() => answers.slice(-20).every((a) => a.version === 2), 'the switch to version 2');
  const switchedAt = answers.length;
  await waitFor(() => answers.length > switchedAt + 200, 'load after the switch');
  stop = true;
  await Promise.all(clients);

  expect(answers.filter((a) => a.status !== 200)).toEqual([]);
  for (const a of answers) {
    expect(a.value).toBe(expected.get(a.version!));
    if (a.v1 !== undefined) expect(a.v1).toBe(a.value);
  }
  expect(answers.some((a) => a.version === 1)).toBe(true);
  expect(answers.slice(switchedAt).every((a) => a.version === 2)).toBe(true);
  expect((await server.app.inject('/readyz')).json().models[`${name}@production`]).toBe(2);
});
