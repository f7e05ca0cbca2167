-- An agent record belongs to the tenant that registered it: a store call made through an
-- owner scope (a PersistencePlugin) creates agents for its own tenant and may change only
-- those, so one tenant can no longer overwrite another's agent that has the same id. Agent
-- ids stay global, like session ids. Existing agents keep NULL (no tenant).
-- MySQL 8 has no ADD COLUMN IF NOT EXISTS, and its DDL is not transactional: the column is
-- added only when information_schema does not list it yet, so the file can run again.
SET @mofa_ddl = IF(
    EXISTS(SELECT 1 FROM information_schema.columns WHERE table_schema = DATABASE()
           AND table_name = 'agents' AND column_name = 'tenant_id'),
    'DO 0',
    'ALTER TABLE agents ADD COLUMN tenant_id VARBINARY(1020)'
);
PREPARE mofa_ddl FROM @mofa_ddl;
EXECUTE mofa_ddl;

DEALLOCATE PREPARE mofa_ddl;
