CREATE TABLE IF NOT EXISTS agents (
    id VARCHAR(255) NOT NULL PRIMARY KEY,
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
    session_id VARCHAR(255) NOT NULL PRIMARY KEY,
    agent_id VARCHAR(255),
    user_id VARCHAR(255),
    tenant_id VARCHAR(255),
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
    session_id VARCHAR(255) NOT NULL,
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
    session_id VARCHAR(255) NOT NULL,
    version INT NOT NULL,
    state JSON NOT NULL,
    created_at DATETIME(6) NOT NULL,
    PRIMARY KEY (session_id, version),
    FOREIGN KEY (session_id) REFERENCES sessions(session_id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
