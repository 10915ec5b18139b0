-- Streams at batched-mode rates: mldeploy_stream_append becomes set-based and returns the stored
-- record only for ids that were already in the stream (the caller has the new ones). Parsing
-- every appended record back cost the appending process as much as building it.
CREATE OR REPLACE FUNCTION mldeploy_stream_append(p_stream text, p_record_ids text[], p_records jsonb[])
RETURNS TABLE (item int, stored_offset bigint, stored_record jsonb, created boolean)
LANGUAGE plpgsql AS $$
DECLARE
  head bigint;
  top bigint;
BEGIN
  INSERT INTO stream_heads (stream) VALUES (p_stream) ON CONFLICT DO NOTHING;
  SELECT h.last_offset INTO head FROM stream_heads h WHERE h.stream = p_stream FOR UPDATE;

  RETURN QUERY
  WITH input AS (
    SELECT t.ord::int AS item, t.id, t.rec FROM unnest(p_record_ids, p_records) WITH ORDINALITY AS t (id, rec, ord)
  ), fresh AS (
    -- The first occurrence of each id not yet in the stream.
    SELECT DISTINCT ON (i.id) i.item, i.id, i.rec FROM input i
    WHERE NOT EXISTS (SELECT 1 FROM stream_records r WHERE r.stream = p_stream AND r.record_id = i.id)
    ORDER BY i.id, i.item
  ), numbered AS (
    SELECT f.item, f.id, f.rec, head + row_number() OVER (ORDER BY f.item) AS off FROM fresh f
  ), stored AS (
    INSERT INTO stream_records (stream, stream_offset, record_id, record)
      SELECT p_stream, n.off, n.id, n.rec FROM numbered n
      RETURNING record_id, stream_offset
  )
  SELECT i.item, coalesce(n.off, r.stream_offset, d.off), CASE WHEN n.item IS NULL THEN coalesce(r.record, d.rec) END, n.item IS NOT NULL
  FROM input i
  LEFT JOIN numbered n ON n.item = i.item
  LEFT JOIN stream_records r ON n.item IS NULL AND r.stream = p_stream AND r.record_id = i.id
  -- A repeat of an id that is new in this very call: its first occurrence's offset and record.
  LEFT JOIN numbered d ON n.item IS NULL AND r.record_id IS NULL AND d.id = i.id
  ORDER BY i.item;

  SELECT max(s.stream_offset) INTO top FROM stream_records s WHERE s.stream = p_stream AND s.stream_offset > head;
  IF top IS NOT NULL THEN
    UPDATE stream_heads SET last_offset = top WHERE stream = p_stream;
    PERFORM pg_notify('mldeploy_stream', p_stream || ':' || top);
  END IF;
END
$$;
