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

-- Appends one record unless a record with the same id is already in the stream; either way
-- returns the stored offset and record. Wakes LISTENers on channel mldeploy_stream at commit.
CREATE OR REPLACE FUNCTION mldeploy_stream_append(p_stream text, p_record_id text, p_record jsonb,
  OUT stored_offset bigint, OUT stored_record jsonb, OUT created boolean)
LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO stream_heads (stream) VALUES (p_stream) ON CONFLICT DO NOTHING;
  PERFORM 1 FROM stream_heads WHERE stream = p_stream FOR UPDATE;
  SELECT r.stream_offset, r.record INTO stored_offset, stored_record
    FROM stream_records r WHERE r.stream = p_stream AND r.record_id = p_record_id;
  IF FOUND THEN
    created := false;
    RETURN;
  END IF;
  UPDATE stream_heads SET last_offset = last_offset + 1 WHERE stream = p_stream RETURNING last_offset INTO stored_offset;
  INSERT INTO stream_records (stream, stream_offset, record_id, record) VALUES (p_stream, stored_offset, p_record_id, p_record);
  PERFORM pg_notify('mldeploy_stream', p_stream || ':' || stored_offset);
  stored_record := p_record;
  created := true;
END
$$;
