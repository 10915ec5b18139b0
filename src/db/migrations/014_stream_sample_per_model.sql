-- Stream input samples are unique per model and (event type, event id, consumer), not by the
-- latter alone: deployments (stream namespaces) sharing a database reuse event ids, and one's
-- sample must not stop another's from being kept.
DROP INDEX IF EXISTS prediction_log_stream_sample;
CREATE UNIQUE INDEX IF NOT EXISTS prediction_log_stream_sample_model ON prediction_log (model_name, request_id) WHERE source = 'stream';
