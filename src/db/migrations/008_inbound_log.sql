-- Batched streaming: the inbound event log. Producers append events; one durable workflow per
-- (log, partition) consumes them in offset ranges. A log is `<stream namespace>.<event type>`.
-- Offsets are dense per partition and handed out under the partition's head row lock, so they
-- commit in order: a consumer that has read up to offset N never misses a later-committed
-- record below it. `committed_offset` is how far the partition's decisions are written.
CREATE TABLE IF NOT EXISTS inbound_heads (
  log text NOT NULL,
  partition int NOT NULL,
  last_offset bigint NOT NULL DEFAULT 0,
  committed_offset bigint NOT NULL DEFAULT 0,
  committed_at timestamptz,
  PRIMARY KEY (log, partition)
);

-- One row per event; `event` holds {payload, time, callbackUrl?}. The unique (log, event_id)
-- index makes an append idempotent: the same event emitted twice is stored once.
CREATE TABLE IF NOT EXISTS inbound_events (
  log text NOT NULL,
  partition int NOT NULL,
  event_offset bigint NOT NULL,
  event_id text NOT NULL,
  event jsonb NOT NULL,
  PRIMARY KEY (log, partition, event_offset)
);
CREATE UNIQUE INDEX IF NOT EXISTS inbound_events_id ON inbound_events (log, event_id);

-- Appends a batch of events (possibly to several partitions) and returns, for each input
-- position, where the event is stored and whether this call stored it. Events already in the
-- log (or repeated within the batch) keep their first offset. Heads are locked in partition
-- order, so concurrent appends never deadlock. Wakes LISTENers on mldeploy_inbound at commit.
CREATE OR REPLACE FUNCTION mldeploy_inbound_append(p_log text, p_ids text[], p_partitions int[], p_events jsonb[])
RETURNS TABLE (item int, stored_partition int, stored_offset bigint, created boolean)
LANGUAGE plpgsql AS $$
DECLARE
  new_ids text[];
  new_parts int[];
  new_offsets bigint[];
BEGIN
  INSERT INTO inbound_heads (log, partition)
    SELECT DISTINCT p_log, p FROM unnest(p_partitions) AS p
    ON CONFLICT DO NOTHING;
  PERFORM 1 FROM inbound_heads h
    WHERE h.log = p_log AND h.partition = ANY (p_partitions)
    ORDER BY h.partition FOR UPDATE;

  WITH input AS (
    SELECT t.ord::int AS item, t.id, t.part, t.ev
    FROM unnest(p_ids, p_partitions, p_events) WITH ORDINALITY AS t (id, part, ev, ord)
  ), fresh AS (
    SELECT DISTINCT ON (i.id) i.item, i.id, i.part, i.ev
    FROM input i
    WHERE NOT EXISTS (SELECT 1 FROM inbound_events e WHERE e.log = p_log AND e.event_id = i.id)
    ORDER BY i.id, i.item
  ), numbered AS (
    SELECT f.id, f.part, f.ev,
           h.last_offset + row_number() OVER (PARTITION BY f.part ORDER BY f.item) AS off
    FROM fresh f JOIN inbound_heads h ON h.log = p_log AND h.partition = f.part
  ), stored AS (
    -- A concurrent append of the same id to another partition (its key changed) loses here;
    -- its offset stays a gap, which readers of offset ranges never notice.
    INSERT INTO inbound_events (log, partition, event_offset, event_id, event)
      SELECT p_log, n.part, n.off, n.id, n.ev FROM numbered n
      ON CONFLICT (log, event_id) DO NOTHING
      RETURNING event_id, partition, event_offset
  )
  SELECT array_agg(s.event_id), array_agg(s.partition), array_agg(s.event_offset)
    INTO new_ids, new_parts, new_offsets FROM stored s;

  IF new_ids IS NOT NULL THEN
    UPDATE inbound_heads h SET last_offset = m.top
      FROM (SELECT n.part, max(n.off) AS top FROM unnest(new_parts, new_offsets) AS n (part, off) GROUP BY n.part) m
      WHERE h.log = p_log AND h.partition = m.part AND h.last_offset < m.top;
    PERFORM pg_notify('mldeploy_inbound', p_log);
  END IF;

  RETURN QUERY
    SELECT t.ord::int, e.partition, e.event_offset,
           (t.id = ANY (coalesce(new_ids, '{}')) AND t.ord = min(t.ord) OVER (PARTITION BY t.id))
    FROM unnest(p_ids) WITH ORDINALITY AS t (id, ord)
    JOIN inbound_events e ON e.log = p_log AND e.event_id = t.id
    ORDER BY t.ord;
END
$$;
