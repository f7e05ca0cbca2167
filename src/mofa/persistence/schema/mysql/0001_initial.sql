-- Ids are VARBINARY(1020) (255 characters of UTF-8): exact, case- and trailing-space-
-- sensitive on MySQL 8 and MariaDB alike (their utf8mb4_bin is PAD SPACE, so 'a' and 'a '
-- would collide, and the NO PAD binary collations have different names on each server).
CREATE TABLE IF NOT EXISTS agents (
    id VARBINARY(1020) NOT NULL PRIMARY KEY,
    name VARCHAR(255) NOT NULL,
    state VARCHAR(50) NOT NULL,
    started_at DATETIME(6) NOT NULL,
    provider VARCHAR(100),
    model VARCHAR(100),
    description TEXT,
    created_at DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
    updated_at DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE IF NOT EXISTS sessions (
    session_id VARBINARY(1020) NOT NULL PRIMARY KEY,
    agent_id VARBINARY(1020),
    user_id VARBINARY(1020),
    tenant_id VARBINARY(1020),
    status VARCHAR(50) NOT NULL DEFAULT 'active',
    metadata JSON NOT NULL,
    message_count INT NOT NULL DEFAULT 0,
    created_at DATETIME(6) NOT NULL,
    updated_at DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
    expires_at DATETIME(6) NULL,
    INDEX idx_sessions_agent (agent_id, created_at, session_id),
    INDEX idx_sessions_tenant_user (tenant_id, user_id, created_at, session_id),
    INDEX idx_sessions_user (user_id, created_at, session_id),
    INDEX idx_sessions_created (created_at, session_id),
    FOREIGN KEY (agent_id) REFERENCES agents(id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE IF NOT EXISTS messages (
    id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
    session_id VARBINARY(1020) NOT NULL,
    seq INT NOT NULL,
    role VARCHAR(50) NOT NULL,
    content LONGTEXT NOT NULL,
    metadata JSON NOT NULL,
    timestamp DATETIME(6) NOT NULL,
    UNIQUE INDEX idx_messages_session (session_id, seq),
    INDEX idx_messages_timestamp (timestamp),
    FOREIGN KEY (session_id) REFERENCES sessions(session_id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE IF NOT EXISTS agent_state (
    session_id VARBINARY(1020) NOT NULL,
    version INT NOT NULL,
    state JSON NOT NULL,
    created_at DATETIME(6) NOT NULL,
    PRIMARY KEY (session_id, version),
    FOREIGN KEY (session_id) REFERENCES sessions(session_id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
