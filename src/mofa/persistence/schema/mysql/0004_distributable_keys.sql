-- Every primary and unique key of sessions, messages and agent_state includes session_id (the
-- rule of a table partitioned or distributed by session_id). sessions (session_id) and
-- agent_state (session_id, version) had it; the primary key of messages moves from id to
-- (session_id, seq), which replaces the unique index that kept that order. id stays
-- AUTO_INCREMENT, which InnoDB allows only on an indexed column: it gets a plain index.
-- Online: InnoDB rebuilds the table in place while reads and writes go on (ALGORITHM=INPLACE,
-- LOCK=NONE; a server that cannot do that refuses the statement rather than lock the table),
-- with a short metadata lock at its start and end, taken with a short lock wait and retried.
-- Run again after the change, it finds session_id in the primary key and does nothing.
SET @mofa_ddl = IF(
    EXISTS(SELECT 1 FROM information_schema.statistics WHERE table_schema = DATABASE()
           AND table_name = 'messages' AND index_name = 'PRIMARY'
           AND column_name = 'session_id'),
    'DO 0',
    'ALTER TABLE messages DROP PRIMARY KEY, ADD PRIMARY KEY (session_id, seq), ADD INDEX idx_messages_id (id), DROP INDEX idx_messages_session, ALGORITHM=INPLACE, LOCK=NONE'
);
PREPARE mofa_ddl FROM @mofa_ddl;
-- online
EXECUTE mofa_ddl;

DEALLOCATE PREPARE mofa_ddl;
