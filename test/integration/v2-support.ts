// Shared by the v2 client tests: example tensors (FP32 and BYTES rides; INT64, FP64, BOOL and
// BYTES from the dtypes fixture) and the JSON path's answer they are compared with.
import fs from 'node:fs';
import path from 'node:path';
import { expect } from 'vitest';
import { FIXTURES } from '../helpers.ts';
import type { TritonTensor } from '../setup/triton-client.ts';
import { RIDES, type TestServer } from './serve-support.ts';

export const rideInputs = (rides = RIDES): TritonTensor[] => [
  { name: 'PU_DO', datatype: 'BYTES', shape: [rides.length, 1], data: rides.map((r) => `${r.PULocationID}_${r.DOLocationID}`) },
  { name: 'trip_distance', datatype: 'FP32', shape: [rides.length, 1], data: rides.map((r) => r.trip_distance) },
];

export const dtypesExpected = (): { records: Array<{ i: number; d: number; b: boolean; s: string }>; predictions: number[] } =>
  JSON.parse(fs.readFileSync(path.join(FIXTURES, 'dtypes.expected.json'), 'utf8'));

export const dtypeInputs = (): TritonTensor[] => {
  const { records } = dtypesExpected();
  const n = records.length;
  return [
    { name: 'i', datatype: 'INT64', shape: [n, 1], data: records.map((r) => r.i) },
    { name: 'd', datatype: 'FP64', shape: [n, 1], data: records.map((r) => r.d) },
    { name: 'b', datatype: 'BOOL', shape: [n, 1], data: records.map((r) => r.b) },
    { name: 's', datatype: 'BYTES', shape: [n, 1], data: records.map((r) => r.s) },
  ];
};

/** The outputs of a JSON v2 infer call, by name. */
export async function viaJson(baseUrl: string, token: string, model: string, inputs: TritonTensor[], outputs?: string[]): Promise<Record<string, TritonTensor>> {
  const res = await fetch(`${baseUrl}/v2/models/${model}/infer`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
    body: JSON.stringify({ inputs, ...(outputs ? { outputs: outputs.map((name) => ({ name })) } : {}) }),
  });
  expect(res.status, await res.clone().text()).toBe(200);
  const body = (await res.json()) as { outputs: TritonTensor[] };
  return Object.fromEntries(body.outputs.map((o) => [o.name, o]));
}

/** Listens on a free local port; returns host:port, as tritonclient takes it. */
export async function listenLocal(server: TestServer): Promise<string> {
  await server.app.listen({ host: '127.0.0.1', port: 0 });
  const address = server.app.server.address();
  return `127.0.0.1:${typeof address === 'object' && address ? address.port : 0}`;
}
