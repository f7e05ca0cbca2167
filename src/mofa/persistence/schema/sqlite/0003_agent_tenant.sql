-- An agent record belongs to the tenant that registered it: a store call made through an
-- owner scope (a PersistencePlugin) creates agents for its own tenant and may change only
-- those, so one tenant can no longer overwrite another's agent that has the same id. Agent
-- ids stay global, like session ids. Existing agents keep NULL (no tenant).
ALTER TABLE agents ADD COLUMN tenant_id TEXT;
