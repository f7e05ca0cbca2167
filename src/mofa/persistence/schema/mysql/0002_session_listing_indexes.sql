-- Every combination of the session-listing filters (agent, user, tenant) gets an index whose
-- leading columns are exactly those filters, followed by the listing order. Version 1 served
-- an agent together with a user by one of the two and a filter on the other, so an agent
-- resuming a user's conversation walked all of that user's sessions with other agents.
-- InnoDB ends every secondary index with the primary key (session_id), so the agent, tenant
-- and user index needs no session_id of its own, which would pass InnoDB's 3,072-byte limit.
-- MySQL 8 has no CREATE INDEX IF NOT EXISTS, and MySQL's DDL is not transactional: each index
-- is created only when information_schema does not list it yet, so this file can run again
-- after an upgrade that stopped part way (by the store, or by the mysql client).
SET @mofa_ddl = IF(
    EXISTS(SELECT 1 FROM information_schema.statistics WHERE table_schema = DATABASE()
           AND table_name = 'sessions' AND index_name = 'idx_sessions_agent_user'),
    'DO 0',
    'CREATE INDEX idx_sessions_agent_user ON sessions(agent_id, user_id, created_at, session_id)'
);
PREPARE mofa_ddl FROM @mofa_ddl;
EXECUTE mofa_ddl;

SET @mofa_ddl = IF(
    EXISTS(SELECT 1 FROM information_schema.statistics WHERE table_schema = DATABASE()
           AND table_name = 'sessions' AND index_name = 'idx_sessions_agent_tenant_user'),
    'DO 0',
    'CREATE INDEX idx_sessions_agent_tenant_user ON sessions(agent_id, tenant_id, user_id, created_at)'
);
PREPARE mofa_ddl FROM @mofa_ddl;
EXECUTE mofa_ddl;

SET @mofa_ddl = IF(
    EXISTS(SELECT 1 FROM information_schema.statistics WHERE table_schema = DATABASE()
           AND table_name = 'sessions' AND index_name = 'idx_sessions_agent_tenant'),
    'DO 0',
    'CREATE INDEX idx_sessions_agent_tenant ON sessions(agent_id, tenant_id, created_at, session_id)'
);
PREPARE mofa_ddl FROM @mofa_ddl;
EXECUTE mofa_ddl;

SET @mofa_ddl = IF(
    EXISTS(SELECT 1 FROM information_schema.statistics WHERE table_schema = DATABASE()
           AND table_name = 'sessions' AND index_name = 'idx_sessions_tenant'),
    'DO 0',
    'CREATE INDEX idx_sessions_tenant ON sessions(tenant_id, created_at, session_id)'
);
PREPARE mofa_ddl FROM @mofa_ddl;
EXECUTE mofa_ddl;

DEALLOCATE PREPARE mofa_ddl;
