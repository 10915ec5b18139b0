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
  await pool.query(
    `INSERT INTO dead_letters (event_type, event_id, payload, reason, source) VALUES ($1, $2, $3, $4, $5)
     ON CONFLICT (event_type, event_id) DO NOTHING`,
    [letter.eventType, letter.eventId, JSON.stringify(letter.payload), letter.reason, letter.source],
  );
}
