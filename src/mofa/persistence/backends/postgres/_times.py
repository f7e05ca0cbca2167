"""Naming a PostgreSQL time that asyncpg cannot decode.

``TIMESTAMPTZ`` spans far more than Python's years 1 to 9999, so a row edited by hand can
hold a time (``'10000-01-01'``, ``'0001-01-01 BC'``) that makes asyncpg fail the whole
result with ``OverflowError`` before any row reaches the store. The store then runs the
statement :func:`bad_time_search` gives, on the table the failed statement read, and turns
the row it finds into a :class:`DamagedRecordError` (:func:`damaged_time_error`) naming the
record and the field, as every backend does for a value it cannot read.

Plain SQL text and tuples only: the store runs the statement through its own pool.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any, Final

from mofa.persistence.errors import DamagedRecordError

__all__ = ["bad_time_search", "damaged_time_error"]

#: The table a statement reads: the first one it names (its SELECT's FROM, its UPDATE's or
#: INSERT's target), which is the table of the rows it returns.
_READS_FROM: Final = re.compile(r"\b(?:FROM|UPDATE|INTO) (agent_state|agents|sessions|messages)\b")
#: Per table: the record's id column, its number column, its time columns, and whether the
#: call's $1 (a session id) bounds the search (else the addressed record only comes first).
_TIME_COLUMNS: Final = {
    "sessions": ("session_id", "NULL", ("created_at", "updated_at", "expires_at"), False),
    "agents": ("id", "NULL", ("started_at", "created_at", "updated_at"), False),
    "messages": ("session_id", "seq", ("timestamp",), True),
    "agent_state": ("session_id", "version", ("created_at",), True),
}


def _outside_years(column: str) -> str:
    # ±infinity is no damage: asyncpg reads it as datetime.max / datetime.min.
    return (
        f"isfinite({column}) AND {column} NOT BETWEEN '0001-01-01 00:00:00+00' "
        "AND '9999-12-31 23:59:59.999999+00'"
    )


def _bad_time_query(table: str) -> str:
    """The first row of ``table`` holding a time outside the years 1 to 9999: its id, its
    number and, per time column, the text of such a time (else NULL)."""
    key, number, columns, bounded = _TIME_COLUMNS[table]
    shown = ", ".join(f"CASE WHEN {_outside_years(c)} THEN {c}::text END" for c in columns)
    found = " OR ".join(f"({_outside_years(c)})" for c in columns)
    where = f"{key} = $1::text AND ({found})" if bounded else found
    return (
        f"SELECT {key}::text, {number}, {shown} FROM {table} WHERE {where} "  # noqa: S608
        f"ORDER BY {key} = $1::text DESC NULLS LAST LIMIT 1"
    )


_BAD_TIMES: Final = {table: _bad_time_query(table) for table in _TIME_COLUMNS}


def bad_time_search(query: str, args: Sequence[Any]) -> tuple[str, str | None] | None:
    """The statement and its argument that find the row with a bad time among those
    ``query`` read (``None``: the statement reads no table with times)."""
    match = _READS_FROM.search(query)
    if match is None:
        return None
    addressed = args[0] if args and isinstance(args[0], str) else None
    return _BAD_TIMES[match[1]], addressed


def damaged_time_error(query: str, row: Sequence[Any]) -> DamagedRecordError:
    """The error for the row :func:`bad_time_search`'s statement found for ``query``."""
    match = _READS_FROM.search(query)
    assert match is not None  # only called after bad_time_search found the table
    table = match[1]
    record_id, number, *times = row
    columns = _TIME_COLUMNS[table][2]
    field, value = next((c, text) for c, text in zip(columns, times, strict=True) if text)
    if table == "agents":
        return DamagedRecordError(f"agent {record_id!r}", field, value)
    record = f"session {record_id!r}"
    if table != "sessions":
        kind = "message" if table == "messages" else "state version"
        record = f"{kind} {number} of {record}"
    return DamagedRecordError(record, field, value, session_id=record_id)
