// One v2 infer call, whatever carried it (HTTP JSON, HTTP binary, gRPC): the model by name and
// version, the feeds checked against its inputs, the requested outputs, and the data plane's
// (dynamically batched) run. A failure is an HttpError the transport maps to its own status.
import type ort from 'onnxruntime-node';
import { validateModelName } from '../registry/refs.ts';
import type { LoadedModel } from '../registry/runtime.ts';
import type { ServeContext } from './context.ts';
import { badRequest, ClientGoneError } from './errors.ts';
import { toFeeds, type V2InputTensor } from './v2-tensors.ts';

export async function v2Model(ctx: ServeContext, name: string, version?: string): Promise<LoadedModel> {
  validateModelName(name);
  return ctx.plane.model(version ? `${name}@${Number(version)}` : name);
}

/** Whether the named model (version) is loaded in this process: resolved, never loaded. Unknown models are a 404. */
export async function v2Readiness(ctx: ServeContext, name: string, version?: string): Promise<{ name: string; version: number; loaded: boolean }> {
  validateModelName(name);
  return ctx.resolver.isLoaded(version ? `${name}@${Number(version)}` : name);
}

export interface V2Inference {
  /** The outputs answered, in the order asked (all the model's when none were named). */
  names: string[];
  tensors: Record<string, ort.Tensor>;
}

export async function v2Infer(
  ctx: ServeContext,
  model: LoadedModel,
  inputs: V2InputTensor[],
  requested: string[] | undefined,
  binary: Map<string, Buffer> | undefined,
  requestId: string,
  signal?: AbortSignal,
): Promise<V2Inference> {
  const { feeds, rows } = toFeeds(inputs, model.metadata.inputs, ctx.config.maxRecords, binary);
  const known = model.metadata.outputs.map((o) => o.name);
  const names = requested ?? known;
  for (const n of names) if (!known.includes(n)) throw badRequest(`the model has no output '${n}' (outputs: ${known.join(', ')})`);
  const wanted = [...new Set(names)];
  let tensors: Record<string, ort.Tensor>;
  try {
    tensors = await ctx.plane.tensors(model, { feeds, rows, outputs: wanted }, signal);
  } catch (err) {
    if ((err as Error).name === 'AbortError' || err instanceof ClientGoneError) throw err;
    // The tensors match the declared metadata; what onnxruntime still rejects is the caller's data.
    throw badRequest(`the model rejected the inputs: ${(err as Error).message.split('\n')[0]}`);
  }
  ctx.predictionLog?.addTensors(requestId, model, feeds, rows, tensors[wanted[0]]);
  return { names: wanted, tensors };
}
