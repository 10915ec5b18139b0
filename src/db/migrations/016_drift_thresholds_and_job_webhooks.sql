-- Monitors take the drift thresholds batch jobs take (NULL: the defaults, PSI 0.2 per feature
-- and a drifted share of 0.5), and a batch run keeps its job's own drift alert webhook (NULL:
-- MLDEPLOY_ALERT_WEBHOOK_URL), which the alert activity reads by run id.
ALTER TABLE monitors ADD COLUMN IF NOT EXISTS psi_threshold double precision CHECK (psi_threshold > 0);
ALTER TABLE monitors ADD COLUMN IF NOT EXISTS drift_share double precision CHECK (drift_share > 0 AND drift_share <= 1);
ALTER TABLE batch_runs ADD COLUMN IF NOT EXISTS alert_webhook_url text;
