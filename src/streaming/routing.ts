// Routing: which consumers (models) an event type fans out to, and the policy that turns
// their predictions into a decision. Kept in a JSON file that is read again for every event,
// so edits apply to the next event without restarting anything.
import fs from 'node:fs/promises';
import { z } from 'zod';
import { ConditionSchema } from './policy.ts';

const NAME = /^[a-z][a-z0-9_-]{0,62}$/;

const Rule = z
  .object({
    /** consumer → thresholds on its prediction, and/or proba.<class> → thresholds (src/streaming/policy.ts). */
    when: z.record(z.string(), ConditionSchema).refine((w) => Object.keys(w).length > 0, 'needs at least one condition'),
    action: z.string().min(1),
    reason: z.string().min(1),
  })
  .strict();

const Consumer = z
  .object({
    name: z.string().regex(NAME, 'must be lower case letters, digits, - or _'),
    model: z.string().min(1),
    taskQueue: z.string().min(1).optional(),
    /** The payload field that holds this consumer's feature record; the whole payload when absent. */
    features: z.string().min(1).optional(),
    required: z.boolean().default(true),
    timeoutMs: z.number().int().positive().default(2_000),
    maxAttempts: z.number().int().min(1).max(20).default(3),
    waitMs: z.number().int().positive().optional(),
  })
  .strict();

const Route = z
  .object({
    /**
     * per-event: each event is its own workflow (low rates; every event visible in the Web UI).
     * batched: events are appended to an inbound log and decided in batches by one workflow per
     * partition (stream rates).
     */
    mode: z.enum(['per-event', 'batched']).default('per-event'),
    /** batched: partitions of the inbound log; bounds the parallelism of the event type. */
    partitions: z.number().int().min(1).max(256).default(4),
    /** batched: payload field whose value picks the partition (events sharing it are decided in order); the event id when absent. */
    partitionKey: z.string().min(1).optional(),
    /** batched: most events per batch. */
    batchMax: z.number().int().min(1).max(5_000).default(500),
    /** batched: how long a partition waits for more events before it starts a batch that is not full. */
    lingerMs: z.number().int().min(0).max(1_000).default(5),
    /**
     * batched: ranges of a partition whose consumers may run at once (their decisions stay in
     * order). More overlaps more work; on a small machine every range in flight competes for
     * the same cores, so fewer keep latency down (docs/benchmarks.md).
     */
    maxInFlight: z.number().int().min(1).max(16).default(2),
    consumers: z.array(Consumer).min(1),
    decision: z.object({ rules: z.array(Rule), default: z.string().min(1) }).strict(),
  })
  .strict()
  .superRefine((route, ctx) => {
    const names = route.consumers.map((c) => c.name);
    names.forEach((n, i) => {
      if (names.indexOf(n) !== i) ctx.addIssue({ code: 'custom', path: ['consumers', i, 'name'], message: `consumer '${n}' is listed twice` });
    });
    route.decision.rules.forEach((rule, r) => {
      for (const consumer of Object.keys(rule.when)) {
        if (!names.includes(consumer)) ctx.addIssue({ code: 'custom', path: ['decision', 'rules', r, 'when', consumer], message: `no consumer named '${consumer}'` });
      }
    });
  });

export const RoutingSchema = z.object({ events: z.record(z.string().regex(NAME), Route) }).strict();

export type Routing = z.infer<typeof RoutingSchema>;
/** A routing file's content as written (defaults not yet applied). */
export type RoutingInput = z.input<typeof RoutingSchema>;
export type RouteConfig = z.infer<typeof Route>;
/** A route as written in the routing file (defaults not yet applied). */
export type RouteInput = z.input<typeof Route>;
export type ConsumerConfig = z.infer<typeof Consumer>;

export class RoutingError extends Error {
  override name = 'RoutingError';
}

/** Consumers without a task queue of their own get `mldeploy-consumer-<name>`. */
export function consumerTaskQueue(consumer: Pick<ConsumerConfig, 'name' | 'taskQueue'>): string {
  return consumer.taskQueue ?? `mldeploy-consumer-${consumer.name}`;
}

export function parseRouting(raw: unknown, source = 'routing'): Routing {
  const parsed = RoutingSchema.safeParse(raw);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`);
    throw new RoutingError(`${source} is invalid: ${problems.join('; ')}`);
  }
  return parsed.data;
}

export async function loadRouting(file: string): Promise<Routing> {
  let text: string;
  try {
    text = await fs.readFile(file, 'utf8');
  } catch (err) {
    throw new RoutingError(`cannot read the routing file ${file}: ${(err as Error).message}`);
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    throw new RoutingError(`the routing file ${file} is not valid JSON: ${(err as Error).message}`);
  }
  return parseRouting(raw, `the routing file ${file}`);
}

const parsedFiles = new Map<string, { stamp: string; routing: Promise<Routing> }>();

/**
 * The routing file as it is now, parsed again only when it changed (its size, change times
 * or inode): for activities that read it at every batch, so a change applies from the
 * next one without the file being read and validated hundreds of times a second.
 */
export async function currentRouting(file: string): Promise<Routing> {
  let stamp: string;
  try {
    const s = await fs.stat(file);
    stamp = `${s.ino}:${s.size}:${s.mtimeMs}:${s.ctimeMs}`;
  } catch (err) {
    throw new RoutingError(`cannot read the routing file ${file}: ${(err as Error).message}`);
  }
  const cached = parsedFiles.get(file);
  if (cached?.stamp === stamp) return cached.routing;
  const routing = loadRouting(file);
  parsedFiles.set(file, { stamp, routing });
  routing.catch(() => parsedFiles.delete(file));
  return routing;
}

/** Every consumer task queue in the routing, by consumer name (one queue per name). */
export function consumerQueues(routing: Routing): Map<string, string> {
  const queues = new Map<string, string>();
  for (const route of Object.values(routing.events)) {
    for (const c of route.consumers) queues.set(c.name, consumerTaskQueue(c));
  }
  return queues;
}
