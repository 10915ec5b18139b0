-- Registry changes are announced on the 'mldeploy_models' channel, with the model name as
-- payload, so every process's model resolver (src/registry/resolver.ts) re-resolves that
-- model's references at once instead of waiting for its next poll. NOTIFY is delivered at
-- commit, so a listener never sees a change it cannot read yet.
CREATE OR REPLACE FUNCTION mldeploy_model_notify() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'DELETE' THEN
    PERFORM pg_notify('mldeploy_models', OLD.name);
  ELSE
    PERFORM pg_notify('mldeploy_models', NEW.name);
  END IF;
  RETURN NULL;
END;
$$;

DROP TRIGGER IF EXISTS model_aliases_notify ON model_aliases;
CREATE TRIGGER model_aliases_notify
  AFTER INSERT OR UPDATE OR DELETE ON model_aliases
  FOR EACH ROW EXECUTE FUNCTION mldeploy_model_notify();

DROP TRIGGER IF EXISTS model_versions_notify ON model_versions;
CREATE TRIGGER model_versions_notify
  AFTER INSERT OR DELETE ON model_versions
  FOR EACH ROW EXECUTE FUNCTION mldeploy_model_notify();
