-- Model registry: immutable versions and movable aliases.
CREATE TABLE IF NOT EXISTS model_versions (
  name        text        NOT NULL,
  version     integer     NOT NULL,
  sha256      text        NOT NULL,
  size_bytes  integer     NOT NULL,
  onnx        bytea       NOT NULL,
  inputs      jsonb       NOT NULL,
  outputs     jsonb       NOT NULL,
  spec        jsonb       NOT NULL,
  metrics     jsonb       NOT NULL DEFAULT '{}',
  created_at  timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (name, version)
);

CREATE TABLE IF NOT EXISTS model_aliases (
  name        text        NOT NULL,
  alias       text        NOT NULL,
  version     integer     NOT NULL,
  updated_at  timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (name, alias),
  FOREIGN KEY (name, version) REFERENCES model_versions (name, version)
);
