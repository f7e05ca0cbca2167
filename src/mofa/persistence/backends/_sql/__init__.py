"""The core the SQL backends share, so a change that is the same in every dialect is one edit.

* :mod:`._dialect`: :class:`Dialect`, what one dialect is to the core (placeholders, JSON
  columns, "no limit", NULL-safe equality, its row readers ``*_from_row``);
* :mod:`._statements`: the SQL text that is truly the same (the reads, the session listings,
  the owner condition), written once against a dialect;
* :mod:`._store`: :class:`SqlStore`, the read calls, one statement each;
* :mod:`._migrate`: creating or upgrading the schema over a small :class:`SchemaSession`;
* :mod:`._maintenance`: a prune's batch delete, the store's counts, a health check's facts.

What differs stays in the backend packages: the writes, error translation, opening
connections (URLs, TLS, pools, SQLite's worker thread) and the schema lock.
"""

from __future__ import annotations

from mofa.persistence.backends._sql._dialect import Dialect, numbered, positional
from mofa.persistence.backends._sql._maintenance import (
    COUNTS,
    HEALTH,
    delete_sessions_statement,
    health_facts,
    prune_parameters,
)
from mofa.persistence.backends._sql._migrate import (
    SchemaSession,
    migrate,
    read_version,
    run_to_end,
)
from mofa.persistence.backends._sql._statements import (
    ANY,
    EQUAL,
    IS_NULL,
    FilterKey,
    Reads,
    list_sessions_statements,
    owner_condition,
    owner_params,
    reads,
    session_filters,
    session_in_scope,
    sessions_columns,
)
from mofa.persistence.backends._sql._store import SqlStore

__all__ = [
    "ANY",
    "COUNTS",
    "EQUAL",
    "HEALTH",
    "IS_NULL",
    "Dialect",
    "FilterKey",
    "Reads",
    "SchemaSession",
    "SqlStore",
    "delete_sessions_statement",
    "health_facts",
    "list_sessions_statements",
    "migrate",
    "numbered",
    "owner_condition",
    "owner_params",
    "positional",
    "prune_parameters",
    "read_version",
    "reads",
    "run_to_end",
    "session_filters",
    "session_in_scope",
    "sessions_columns",
]
