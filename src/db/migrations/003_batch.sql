-- Batch scoring: predictions, rejected rows, run summaries and the chunk plan of each run.
CREATE TABLE IF NOT EXISTS predictions (
  job            text             NOT NULL,
  entity_id      bigint           NOT NULL,
  prediction     double precision NOT NULL,
  actual         double precision,
  event_time     timestamp,
  passthrough    jsonb,
  model_name     text             NOT NULL,
  model_version  integer          NOT NULL,
  run_id         text             NOT NULL,
  scored_at      timestamptz      NOT NULL DEFAULT now(),
  PRIMARY KEY (job, entity_id)
);
CREATE INDEX IF NOT EXISTS predictions_run_idx ON predictions (run_id);

CREATE TABLE IF NOT EXISTS rejected_rows (
  job          text        NOT NULL,
  entity_id    bigint      NOT NULL,
  reason       text        NOT NULL,
  run_id       text        NOT NULL,
  rejected_at  timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (job, entity_id)
);

CREATE TABLE IF NOT EXISTS batch_runs (
  run_id         text PRIMARY KEY,
  workflow_id    text        NOT NULL,
  job            text        NOT NULL,
  model_name     text        NOT NULL,
  model_version  integer     NOT NULL,
  source         text        NOT NULL,
  target         text        NOT NULL,
  window_start   timestamptz NOT NULL,
  window_end     timestamptz NOT NULL,
  status         text        NOT NULL,
  chunks         integer     NOT NULL DEFAULT 0,
  rows_read      bigint      NOT NULL DEFAULT 0,
  rows_scored    bigint      NOT NULL DEFAULT 0,
  rows_rejected  bigint      NOT NULL DEFAULT 0,
  stats          jsonb,
  started_at     timestamptz NOT NULL DEFAULT now(),
  finished_at    timestamptz,
  duration_ms    bigint
);

CREATE TABLE IF NOT EXISTS batch_chunks (
  run_id         text    NOT NULL,
  chunk_no       integer NOT NULL,
  key_lo         bigint  NOT NULL,
  key_hi         bigint  NOT NULL,
  planned_rows   integer NOT NULL,
  rows_scored    integer,
  rows_rejected  integer,
  scored_by      text,
  scored_at      timestamptz,
  PRIMARY KEY (run_id, chunk_no)
);
