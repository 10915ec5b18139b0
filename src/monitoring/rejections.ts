// Rejected rows by reason for a run's report. A reason names the field and the problem and may
// quote the value ("trip_distance must be a number, got 'abc'"): the quoted value is cut off, so
// rows group by what was wrong, not by each bad value.
import type { Pool } from '../db/pool.ts';

export async function rejectedByReason(pool: Pool, runId: string, limit = 20): Promise<Array<{ reason: string; rows: number }>> {
  const { rows } = await pool.query(
    `SELECT regexp_replace(reason, ', got .*$', '') AS reason, count(*)::int AS rows
     FROM rejected_rows WHERE run_id = $1 GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT $2`,
    [runId, limit],
  );
  return rows;
}
