"""The schema as data: one folder per SQL dialect, one numbered file per migration.

A migration's position is its version (``0001_initial.sql`` is version 1). The stores and
``mofa db init`` / ``mofa db schema`` all run or print :func:`script_statements`, so what the
CLI shows is exactly what a store executes::

    for each migration: its statements, then the row recording it
    (the bookkeeping table mofa_schema_migrations is created before the first such row)

Statements are separated by a ``;`` at the end of a line, outside a ``$$``-quoted body (a
PostgreSQL ``DO`` block may hold ``;`` inside its ``$$ … $$``); the files hold no other ``;``.

A statement after a comment line ``-- online`` is an online step (:func:`pending_steps`):
the store runs it alone, outside any transaction, waiting only briefly for the locks it
needs and retrying, so writes never queue behind it for long (PostgreSQL's ``CREATE INDEX
CONCURRENTLY``, a key change in a ``DO`` block, MySQL's ``ALGORITHM=INPLACE, LOCK=NONE``).
An online step must be safe to run again: a run killed at any point is resumed by running
the migration's steps again (a ``CREATE INDEX CONCURRENTLY`` that a kill left invalid is
dropped and built again by the store).
"""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import cache

from mofa.persistence.errors import SchemaError

__all__ = [
    "DIALECTS",
    "MIGRATIONS_TABLE",
    "Migration",
    "Step",
    "bootstrap_statement",
    "check_existing_tables",
    "check_ready",
    "check_version",
    "column_types",
    "index_tables",
    "latest_version",
    "migrations",
    "pending_statements",
    "pending_steps",
    "record_statement",
    "script",
    "script_statements",
    "split_statements",
    "table_columns",
    "table_names",
]

DIALECTS = ("postgres", "mysql", "sqlite")
MIGRATIONS_TABLE = "mofa_schema_migrations"

_BOOTSTRAP = {
    "postgres": (
        "CREATE TABLE IF NOT EXISTS mofa_schema_migrations (\n"
        "    version INTEGER PRIMARY KEY,\n"
        "    name VARCHAR(255) NOT NULL,\n"
        "    applied_at TIMESTAMPTZ NOT NULL DEFAULT CURRENT_TIMESTAMP\n"
        ")"
    ),
    "mysql": (
        "CREATE TABLE IF NOT EXISTS mofa_schema_migrations (\n"
        "    version INT NOT NULL PRIMARY KEY,\n"
        "    name VARCHAR(255) NOT NULL,\n"
        "    applied_at DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6)\n"
        ") ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin"
    ),
    "sqlite": (
        "CREATE TABLE IF NOT EXISTS mofa_schema_migrations (\n"
        "    version INTEGER PRIMARY KEY,\n"
        "    name TEXT NOT NULL,\n"
        "    applied_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP\n"
        ")"
    ),
}

_RECORD = {
    "postgres": "INSERT INTO mofa_schema_migrations (version, name) VALUES ({version}, '{name}') "
    "ON CONFLICT (version) DO NOTHING",
    "mysql": "INSERT IGNORE INTO mofa_schema_migrations (version, name) "
    "VALUES ({version}, '{name}')",
    "sqlite": "INSERT OR IGNORE INTO mofa_schema_migrations (version, name) "
    "VALUES ({version}, '{name}')",
}

_FILE_RE = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")
_INDEX_RE = re.compile(r"CREATE (?:UNIQUE )?INDEX IF NOT EXISTS (\w+) ON (\w+)", re.IGNORECASE)
_TABLE_BODY_RE = re.compile(
    r"CREATE TABLE IF NOT EXISTS (\w+) \((.*?)\n\)", re.IGNORECASE | re.DOTALL
)
#: A column a later migration adds (on MySQL inside the text of a conditional statement).
_ADD_COLUMN_RE = re.compile(
    r"ALTER TABLE (\w+) ADD COLUMN (?:IF NOT EXISTS )?(\w+) ([A-Za-z]+(?:\(\d+\))?)",
    re.IGNORECASE,
)
#: Lines of a CREATE TABLE body that declare a constraint or an index, not a column.
_NOT_A_COLUMN = frozenset(
    {"PRIMARY", "FOREIGN", "UNIQUE", "INDEX", "KEY", "CONSTRAINT", "CHECK", "FULLTEXT"}
)


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def statements(self) -> list[str]:
        return split_statements(self.sql)

    @property
    def marked_statements(self) -> list[tuple[str, bool]]:
        """Each statement, and whether it is an online step."""
        return _marked_statements(self.sql)


@dataclass(frozen=True, slots=True)
class Step:
    """Statements a store runs together: online (one statement, alone, outside a
    transaction, with a short lock wait) or not (in one transaction where the dialect has
    transactional DDL)."""

    online: bool
    statements: tuple[str, ...]


def _read_text(path: str) -> str:
    with open(path, encoding="utf-8") as file:
        return file.read()


def _check_dialect(dialect: str) -> None:
    if dialect not in DIALECTS:
        raise ValueError(f"Unknown SQL dialect {dialect!r}; use one of: {', '.join(DIALECTS)}.")


@cache
def migrations(dialect: str) -> tuple[Migration, ...]:
    """The dialect's migrations in order; version N is the N-th file."""
    _check_dialect(dialect)
    here = os.path.join(os.path.dirname(__file__), dialect)
    if os.path.isdir(here):
        # Installed as files (the usual case): read them directly; importlib.resources, which
        # also reads from a zip, costs ~5 ms of a command's start to import.
        entries: list[tuple[str, Callable[[], str]]] = [
            (name, functools.partial(_read_text, os.path.join(here, name)))
            for name in os.listdir(here)
        ]
    else:  # pragma: no cover - zipped installs
        from importlib import resources

        folder = resources.files(__package__).joinpath(dialect)
        entries = [
            (entry.name, functools.partial(entry.read_text, "utf-8")) for entry in folder.iterdir()
        ]
    found = []
    for name, read in entries:
        match = _FILE_RE.match(name)
        if match:
            found.append(Migration(int(match.group(1)), match.group(2), read()))
    found.sort(key=lambda migration: migration.version)
    for position, migration in enumerate(found, start=1):
        if migration.version != position:  # pragma: no cover - a packaging mistake
            raise RuntimeError(f"Schema migrations for {dialect} skip version {position}.")
    return tuple(found)


def latest_version(dialect: str) -> int:
    return len(migrations(dialect))


def bootstrap_statement(dialect: str) -> str:
    _check_dialect(dialect)
    return _BOOTSTRAP[dialect]


def record_statement(dialect: str, migration: Migration) -> str:
    return _RECORD[dialect].format(version=migration.version, name=migration.name)


def split_statements(sql: str) -> list[str]:
    """Split SQL text into statements (without the final ``;``), dropping comment lines."""
    return [statement for statement, _online in _marked_statements(sql)]


_ONLINE_MARK = re.compile(r"^\s*--\s*online\s*$")


def _marked_statements(sql: str) -> list[tuple[str, bool]]:
    """The statements of ``sql`` with their ``-- online`` marks (see the module docstring)."""
    found: list[tuple[str, bool]] = []
    lines: list[str] = []
    online = in_body = False
    for line in sql.splitlines():
        if not in_body and line.lstrip().startswith("--"):
            online = online or bool(_ONLINE_MARK.match(line))
            continue
        lines.append(line)
        if line.count("$$") % 2:
            in_body = not in_body
        if not in_body and line.rstrip().endswith(";"):
            statement = "\n".join(lines).rstrip()[:-1].strip()
            if statement:
                found.append((statement, online))
            lines, online = [], False
    statement = "\n".join(lines).strip()
    if statement:
        found.append((statement, online))
    return found


def pending_statements(dialect: str, current_version: int) -> list[str]:
    """The statements that bring a database at ``current_version`` to the latest version.

    ``current_version`` 0 means the bookkeeping table does not exist yet.
    """
    return [
        statement
        for step in pending_steps(dialect, current_version)
        for statement in step.statements
    ]


def pending_steps(dialect: str, current_version: int) -> list[Step]:
    """:func:`pending_statements` as the steps a store runs: each online statement alone, the
    statements between them (the bookkeeping ones included) together."""
    marked: list[tuple[str, bool]] = []
    for migration in migrations(dialect):
        if migration.version <= current_version:
            continue
        marked.extend(migration.marked_statements)
        if not current_version and migration.version == 1:
            marked.append((bootstrap_statement(dialect), False))
        marked.append((record_statement(dialect, migration), False))
    steps: list[Step] = []
    for statement, online in marked:
        if online or not steps or steps[-1].online:
            steps.append(Step(online, (statement,)))
        else:
            steps[-1] = Step(False, (*steps[-1].statements, statement))
    return steps


def script_statements(dialect: str) -> list[str]:
    """Every statement a store runs on an empty database, in order."""
    return pending_statements(dialect, 0)


def script(dialect: str) -> str:
    """:func:`script_statements` as one SQL text, runnable by the dialect's own client."""
    return "".join(f"{statement};\n\n" for statement in script_statements(dialect)).rstrip() + "\n"


def table_names(dialect: str) -> list[str]:
    """The tables the migrations create, in creation order (the bookkeeping table excluded)."""
    return list(column_types(dialect))


def check_version(dialect: str, current: int, where: str) -> tuple[int, ...]:
    """The versions a database at ``current`` still needs (empty when it is up to date).

    Raises :class:`SchemaError` for a database a newer mofa-sdk has migrated further.
    """
    latest = latest_version(dialect)
    if current > latest:
        raise SchemaError(
            f"The {where} has schema version {current}, newer than this mofa-sdk knows "
            f"({latest}); upgrade mofa-sdk."
        )
    return tuple(range(current + 1, latest + 1))


def check_ready(dialect: str, current: int, where: str) -> None:
    """Refuse, for a store opened with ``create_schema=False``, a database that has no mofa
    schema or an older one: such a store reads and deletes, it never creates or upgrades."""
    pending = check_version(dialect, current, where)
    if current == 0:
        raise SchemaError(
            f"The {where} has no mofa-sdk schema; check the URL, or create the schema with "
            "'mofa db init'."
        )
    if pending:
        raise SchemaError(
            f"The {where} has schema version {current}, older than this mofa-sdk's "
            f"({latest_version(dialect)}); upgrade it with 'mofa db init'."
        )


def table_columns(dialect: str) -> dict[str, tuple[str, ...]]:
    """The columns of each table the migrations create (the bookkeeping table excluded).

    Read from the CREATE TABLE statements themselves, one column per line as the files are
    written; a test compares the result with the catalog of a freshly created database.
    """
    return {table: tuple(types) for table, types in column_types(dialect).items()}


def check_existing_tables(
    dialect: str,
    columns: Iterable[Sequence[str]],
    where: str,
    indexes: Iterable[Sequence[str]] = (),
) -> None:
    """Refuse a database whose tables or indexes of mofa's names were made by something else.

    ``columns`` are the ``(table, column, type)`` rows of mofa's tables already present before
    the first migration, as the dialect's catalog names the type; ``indexes`` the ``(name,
    table)`` rows of relations already named like mofa's indexes (PostgreSQL and SQLite, where
    an index name belongs to the whole schema or file). The migrations create tables and
    indexes only when missing, so a table made from the documented schema by hand is adopted
    as it is; anything else would make the migration fail halfway (MySQL cannot roll DDL
    back), leave mofa's tables without their indexes, or make every later call fail, so it is
    reported before anything is changed.
    """
    existing: dict[str, dict[str, str]] = {}
    for table, column, declared in columns:
        existing.setdefault(table, {})[column.lower()] = _normal_type(dialect, declared)
    added = _added_columns(dialect)
    for table, all_expected in column_types(dialect).items():
        have = existing.get(table)
        if have is None:
            continue
        # A column a later migration adds need not be there yet (it will be added), but one
        # that is there must have its type.
        expected = {
            column: kind
            for column, kind in all_expected.items()
            if column.lower() in have or (table, column) not in added
        }
        missing = [column for column in expected if column.lower() not in have]
        if missing:
            problem = f"it has no column {', '.join(missing)}"
        else:
            wrong = [
                f"{column} is {have[column.lower()]}, not {kind}"
                for column, kind in expected.items()
                if have[column.lower()] != _normal_type(dialect, kind)
            ]
            if not wrong:
                continue
            problem = f"its column{'s' if len(wrong) > 1 else ''} {'; '.join(wrong)}"
        raise SchemaError(
            f"The {where} already has a table named {table} that mofa-sdk did not create "
            f"({problem}); use an empty database for mofa, or rename that table."
        )
    wanted = index_tables(dialect)
    for name, table in indexes:
        if name in wanted and table != wanted[name]:
            found = f"on table {table}" if table else "that is not an index"
            raise SchemaError(
                f"The {where} already has a relation named {name} ({found}), the name of "
                f"mofa-sdk's index on {wanted[name]}; drop or rename it, or use an empty "
                "database for mofa."
            )


#: Type names whose catalog and schema-file spellings differ by more than case -> one spelling.
_CATALOG_TYPES = {
    # The catalog spells out TIMESTAMPTZ; a BIGSERIAL column is a bigint with a default.
    "postgres": {"timestamp with time zone": "TIMESTAMPTZ", "bigserial": "BIGINT"},
    # MariaDB's JSON is LONGTEXT with a check; MySQL 8 has its own type. Either will do.
    "mysql": {"json": "LONGTEXT"},
}


def _normal_type(dialect: str, declared: str) -> str:
    """A column type in one spelling for comparing the catalog's with the schema file's."""
    kind = " ".join(declared.lower().split())
    if dialect == "postgres" and kind.startswith("character varying("):
        kind = "varchar" + kind.removeprefix("character varying")
    if dialect == "mysql":
        kind = re.sub(r"^(tinyint|smallint|mediumint|int|bigint)\(\d+\)", r"\1", kind)
    if dialect == "sqlite":
        return _affinity(kind)
    return _CATALOG_TYPES[dialect].get(kind, kind.upper())


def _affinity(declared: str) -> str:
    """SQLite's type affinity of a declared type (its rules, in their order): what decides
    how values are stored, so ``VARCHAR(255)`` serves where ``TEXT`` is written."""
    kind = declared.upper()
    if "INT" in kind:
        return "INTEGER"
    if "CHAR" in kind or "CLOB" in kind or "TEXT" in kind:
        return "TEXT"
    if not kind or "BLOB" in kind:
        return "BLOB"
    if "REAL" in kind or "FLOA" in kind or "DOUB" in kind:
        return "REAL"
    return "NUMERIC"


@cache
def column_types(dialect: str) -> dict[str, dict[str, str]]:
    """Each table's columns with their types, as the migrations' CREATE TABLE lines and
    ``ALTER TABLE … ADD COLUMN`` statements write them."""
    types: dict[str, dict[str, str]] = {}
    for migration in migrations(dialect):
        for name, body in _TABLE_BODY_RE.findall(migration.sql):
            table = types.setdefault(name, {})
            for line in body.splitlines():
                words = line.strip().rstrip(",").split()
                if len(words) > 1 and words[0].upper() not in _NOT_A_COLUMN:
                    table[words[0]] = words[1].upper()
        for name, column, kind in _ADD_COLUMN_RE.findall(migration.sql):
            types.setdefault(name, {})[column] = kind.upper()
    return types


@cache
def _added_columns(dialect: str) -> frozenset[tuple[str, str]]:
    """The (table, column) pairs a migration adds to a table that already exists."""
    return frozenset(
        (name, column)
        for migration in migrations(dialect)
        for name, column, _kind in _ADD_COLUMN_RE.findall(migration.sql)
    )


@cache
def index_tables(dialect: str) -> dict[str, str]:
    """The indexes the migrations create with CREATE INDEX, and their tables (none on MySQL,
    whose index names belong to their table and are declared inside CREATE TABLE)."""
    found: dict[str, str] = {}
    for migration in migrations(dialect):
        for name, table in _INDEX_RE.findall(migration.sql):
            found[name] = table
    return found
