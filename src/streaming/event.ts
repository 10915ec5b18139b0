// Checks what a producer sends and turns it into an event: an id (given or generated), a
// type, a JSON-object payload and a time. Feature checks against the consumers' models
// happen later, in the workflow, where the routing is known.
import { randomUUID } from 'node:crypto';
import { z } from 'zod';
import { isJsonbUnstorable } from '../text.ts';
import type { StreamEvent } from './types.ts';

/** Events travel inside Temporal payloads: keep them small. */
export const MAX_PAYLOAD_BYTES = 64 * 1024;

export const EmitInputSchema = z
  .object({
    id: z
      .union([z.string(), z.number().int().nonnegative()])
      .transform(String)
      .pipe(z.string().regex(/^[A-Za-z0-9._:-]{1,128}$/, 'must be 1-128 letters, digits, ., _, : or -'))
      .optional(),
    type: z.string().regex(/^[a-z][a-z0-9_-]{0,62}$/, 'must be lower case letters, digits, - or _, starting with a letter'),
    payload: z.record(z.string(), z.unknown()),
    time: z.iso.datetime({ offset: true }).optional(),
    callbackUrl: z.url({ protocol: /^https?$/ }).optional(),
  })
  .strict();

export type EmitInput = z.input<typeof EmitInputSchema>;

export class EventError extends Error {
  override name = 'EventError';
}

/**
 * The first key or string in the payload that PostgreSQL's jsonb (dead letters, streams) cannot
 * store: such an event would be accepted, then fail its activity on every retry. Walked without
 * recursion.
 */
function unstorableText(payload: Record<string, unknown>): string | undefined {
  const pending: unknown[] = [payload];
  while (pending.length > 0) {
    const value = pending.pop();
    if (typeof value === 'string' && isJsonbUnstorable(value)) return value;
    if (value === null || typeof value !== 'object') continue;
    for (const [key, child] of Object.entries(value)) {
      if (isJsonbUnstorable(key)) return key;
      pending.push(child);
    }
  }
  return undefined;
}

export function parseEvent(raw: unknown, now = new Date()): StreamEvent {
  const parsed = EmitInputSchema.safeParse(raw);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((i) => `${i.path.join('.') || 'event'}: ${i.message}`);
    throw new EventError(`invalid event: ${problems.join('; ')}`);
  }
  const e = parsed.data;
  let size: number;
  try {
    size = Buffer.byteLength(JSON.stringify(e.payload));
  } catch {
    // JSON.stringify recurses: a payload nested tens of thousands deep overflows the stack.
    throw new EventError('invalid event: payload is nested too deeply');
  }
  if (size > MAX_PAYLOAD_BYTES) throw new EventError(`invalid event: payload is ${size} bytes, the limit is ${MAX_PAYLOAD_BYTES}`);
  const unstorable = unstorableText(e.payload);
  if (unstorable !== undefined)
    throw new EventError(`invalid event: payload text ${JSON.stringify(unstorable.slice(0, 40))} holds a NUL character or an unpaired UTF-16 surrogate`);
  const event: StreamEvent = { id: e.id ?? randomUUID(), type: e.type, payload: e.payload, time: e.time ? new Date(e.time).toISOString() : now.toISOString() };
  if (e.callbackUrl) event.callbackUrl = e.callbackUrl;
  return event;
}
