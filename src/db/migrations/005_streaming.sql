-- Streaming fan-out: durable ordered logs (predictions, decisions), subscriber offsets and
-- dead-lettered events. Offsets are handed out under a per-stream row lock, so they commit
-- in order and a reader that resumes after offset N never misses a later-committed record.
CREATE TABLE IF NOT EXISTS stream_heads (
  stream text PRIMARY KEY,
  last_offset bigint NOT NULL DEFAULT 0
);

CREATE TABLE IF NOT EXISTS stream_records (
  stream text NOT NULL,
  stream_offset bigint NOT NULL,
  record_id text NOT NULL,
  record jsonb NOT NULL,
  appended_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (stream, stream_offset),
  UNIQUE (stream, record_id)
);

CREATE TABLE IF NOT EXISTS stream_subscriptions (
  subscriber text NOT NULL,
  stream text NOT NULL,
  stream_offset bigint NOT NULL DEFAULT 0,
  updated_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (subscriber, stream)
);

CREATE TABLE IF NOT EXISTS dead_letters (
  event_type text NOT NULL,
  event_id text NOT NULL,
  payload jsonb,
  reason text NOT NULL,
  source text NOT NULL DEFAULT 'workflow',
  created_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (event_type, event_id)
);

-- Appends records in order, skipping any whose id is already in the stream; returns, for
-- each input position, the stored offset and record and whether it was new. One call per
-- batch keeps the per-stream lock (held until commit) short under load. Wakes LISTENers on
-- channel mldeploy_stream at commit.
CREATE OR REPLACE FUNCTION mldeploy_stream_append(p_stream text, p_record_ids text[], p_records jsonb[])
RETURNS TABLE (item int, stored_offset bigint, stored_record jsonb, created boolean)
LANGUAGE plpgsql AS $$
DECLARE
  next_offset bigint;
  found_offset bigint;
  found_record jsonb;
  appended boolean := false;
BEGIN
  INSERT INTO stream_heads (stream) VALUES (p_stream) ON CONFLICT DO NOTHING;
  SELECT h.last_offset INTO next_offset FROM stream_heads h WHERE h.stream = p_stream FOR UPDATE;
  FOR i IN 1 .. coalesce(array_length(p_record_ids, 1), 0) LOOP
    SELECT r.stream_offset, r.record INTO found_offset, found_record
      FROM stream_records r WHERE r.stream = p_stream AND r.record_id = p_record_ids[i];
    IF FOUND THEN
      item := i; stored_offset := found_offset; stored_record := found_record; created := false;
    ELSE
      next_offset := next_offset + 1;
      INSERT INTO stream_records (stream, stream_offset, record_id, record) VALUES (p_stream, next_offset, p_record_ids[i], p_records[i]);
      item := i; stored_offset := next_offset; stored_record := p_records[i]; created := true;
      appended := true;
    END IF;
    RETURN NEXT;
  END LOOP;
  IF appended THEN
    UPDATE stream_heads SET last_offset = next_offset WHERE stream = p_stream;
    PERFORM pg_notify('mldeploy_stream', p_stream || ':' || next_offset);
  END IF;
END
$$;
