-- Model monitoring (docs/monitoring.md): a version's reference profile, and each batch run's
-- drift. A run copies the profile it is measured against, so its report stays as it was
-- when a profile is rebuilt later; each chunk keeps its histograms (replaced on retry).
CREATE TABLE IF NOT EXISTS model_profiles (
  name        text        NOT NULL,
  version     integer     NOT NULL,
  profile     jsonb       NOT NULL,
  source      text        NOT NULL,
  created_at  timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (name, version),
  FOREIGN KEY (name, version) REFERENCES model_versions (name, version)
);

ALTER TABLE batch_runs ADD COLUMN IF NOT EXISTS reference jsonb;
ALTER TABLE batch_runs ADD COLUMN IF NOT EXISTS drift jsonb;
ALTER TABLE batch_runs ADD COLUMN IF NOT EXISTS drifted boolean;
ALTER TABLE batch_chunks ADD COLUMN IF NOT EXISTS drift jsonb;
-- The source's key, time and actual columns, so a later profile can be built from a run's rows.
ALTER TABLE batch_runs ADD COLUMN IF NOT EXISTS source_columns jsonb;
