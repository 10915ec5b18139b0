// Events that can never be processed, kept with the reason for an operator to inspect.
// One row per (event type, event id): a retried or redelivered rejection adds nothing.
import type { Pool } from '../db/pool.ts';

export interface DeadLetter {
  eventType: string;
  eventId: string;
  payload: unknown;
  reason: string;
  /** Where it was rejected: the fan-out workflow's planning, or the JetStream bridge. */
  source: 'workflow' | 'bridge';
}

export async function insertDeadLetter(pool: Pool, letter: DeadLetter): Promise<void> {
  await insertDeadLetters(pool, [letter]);
}

/** Many letters in one statement (a batch's invalid events). */
export async function insertDeadLetters(pool: Pool, letters: readonly DeadLetter[]): Promise<void> {
  if (letters.length === 0) return;
  await pool.query(
    `INSERT INTO dead_letters (event_type, event_id, payload, reason, source)
     SELECT * FROM unnest($1::text[], $2::text[], $3::jsonb[], $4::text[], $5::text[])
     ON CONFLICT (event_type, event_id) DO NOTHING`,
    [letters.map((l) => l.eventType), letters.map((l) => l.eventId), letters.map((l) => JSON.stringify(l.payload)), letters.map((l) => l.reason), letters.map((l) => l.source)],
  );
}
