-- Every primary and unique key of sessions, messages and agent_state includes session_id: the
-- rule of a table hash-partitioned by session_id, and of Citus distributing it. sessions
-- (session_id) and agent_state (session_id, version) had it; the primary key of messages moves
-- from id to (session_id, seq), taking over the unique index that already kept that order
-- (renamed to the key's name). id stays, filled by its sequence, without a key of its own:
-- nothing reads a message by its id alone.
-- Online: no index is built; the key changes in one short lock of messages, taken with a
-- short lock timeout and retried, so appends never wait behind it for long. Run again after
-- the change, it finds no idx_messages_session and does nothing.
-- online
DO $$
DECLARE
    old_key TEXT;
BEGIN
    IF to_regclass('idx_messages_session') IS NOT NULL THEN
        -- The rename of the index to the key's name is expected: no NOTICE about it.
        PERFORM set_config('client_min_messages', 'warning', true);
        SELECT conname INTO old_key FROM pg_constraint
        WHERE conrelid = 'messages'::regclass AND contype = 'p';
        EXECUTE format(
            'ALTER TABLE messages DROP CONSTRAINT %I, '
            'ADD CONSTRAINT messages_pkey PRIMARY KEY USING INDEX idx_messages_session',
            old_key
        );
    END IF;
END
$$;
