-- Where an imported version came from (an MLflow model: tracking URI without credentials,
-- registered name and version, run id, source URI, signature). Its key identifies the
-- source, so importing the same MLflow version under one name twice stores it once.
ALTER TABLE model_versions ADD COLUMN IF NOT EXISTS provenance jsonb;

CREATE UNIQUE INDEX IF NOT EXISTS model_versions_provenance_key ON model_versions (name, (provenance ->> 'key')) WHERE provenance IS NOT NULL;
