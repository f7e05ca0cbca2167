"""``mofa db``: print, save or apply the schema of a PostgreSQL, MySQL/MariaDB or SQLite database.

There is one schema, stored as data in :mod:`mofa.persistence.schema`. ``db schema`` and
``db init`` print :func:`~mofa.persistence.schema.script` (what a store runs on an empty
database, statement for statement), ``db init -o`` saves it for the database's own client, and
``db init -u`` opens a store on the URL, which creates or upgrades the schema (plain steps in
one transaction where the dialect allows it, online steps alone: ``backends/_sql/_online``)
— so all three give the same tables.

The SQL is data and goes to stdout (pipeable); the progress lines of ``-o`` / ``-u`` (the seeds'
lines) go to stderr, as errors do (one ``Error: …`` line, exit 1), so a terminal shows what
the seeds show and a redirected stdout holds nothing but the SQL.
"""

from __future__ import annotations

import shlex
from pathlib import Path

import click

from mofa.cli._doctor import doctor
from mofa.cli._errors import CliError, missing_driver_message, run
from mofa.cli._files import atomic_text_file, cannot_write
from mofa.persistence import DatabaseURL, InvalidURLError, open_store, parse_url
from mofa.persistence import schema as schema_data
from mofa.persistence._registry import display_name

__all__ = ["db", "init", "schema"]

DB_TYPES = schema_data.DIALECTS

#: The URL scheme to suggest for a type, in the "URL and -t disagree" error.
_SCHEME_FOR_TYPE = {"postgres": "postgresql://", "mysql": "mysql://", "sqlite": "sqlite://"}

#: The command that runs a saved script with the database's own client (``{path}`` quoted).
_CLIENT_COMMANDS = {
    "postgres": "psql -U user -d mofa -f {path}",
    "mysql": "mysql -u user -p mofa < {path}",
    "sqlite": "sqlite3 mofa.db < {path}",
}

#: Names -t takes besides the dialects: PostgreSQL's own scheme name, and MariaDB.
TYPE_ALIASES = {"postgresql": "postgres", "mariadb": "mysql"}

_DB_TYPE_OPTION = click.option(
    "-t",
    "--db-type",
    "db_type",
    type=click.Choice([*DB_TYPES, *TYPE_ALIASES], case_sensitive=False),
    help="Database type: postgres (or postgresql), mysql (or mariadb) or sqlite. "
    "May be left out when a URL (-u or mofa --database-url) says it.",
)


def _db_type(
    ctx: click.Context, given: str | None, url: DatabaseURL | None, *, init: bool = False
) -> str:
    """-t as a dialect name, or the type the URL names; a usage error when neither says
    (for ``db init``, naming the environment's URL when one is set)."""
    if given is not None:
        given = given.lower()
        return TYPE_ALIASES.get(given, given)
    if url is not None and url.backend in DB_TYPES:
        return url.backend
    if url is not None:
        raise click.UsageError(
            f"the URL is a {url.scheme}:// URL, which names no SQL database; "
            "give a postgresql://, mysql:// or sqlite:// URL.",
            ctx,
        )
    message = (
        "Missing option '-t' / '--db-type' (postgres, mysql or sqlite); it may be left out "
        "only when a URL (-u or mofa --database-url) says the type."
    )
    name = _environment_url_name() if init else None
    if name is not None:
        message += f' ${name} is set: to create the tables there, run: mofa db init -u "${name}"'
    raise click.UsageError(message, ctx)


def _global_url(ctx: click.Context) -> str | None:
    """``mofa --database-url URL``, which ``db init`` runs against as it would ``-u URL``."""
    return getattr(ctx.find_root().obj, "database_url", None)


def _parse(database_url: str) -> DatabaseURL:
    try:
        return parse_url(database_url)
    except InvalidURLError as exc:
        # The parser's message shows the URL masked (mofa.persistence.mask_url).
        raise click.UsageError(str(exc)) from None


def _script_with_header(db_type: str, title: str) -> str:
    return (
        f"-- MoFA {title} Schema\n"
        "-- Copy and execute this SQL to initialize your database\n"
        "\n" + schema_data.script(db_type)
    )


@click.group()
def db() -> None:
    """Database setup and migration tools for persistent storage backends.

    \b
    Examples:
      mofa db schema -t postgres
      mofa db init -t postgres -o migration.sql
      mofa db init -t postgres -u "postgresql://user:pass@localhost/mofa"
      mofa db init -t mysql -u "mysql://user:pass@localhost/mofa"
      mofa db init -t sqlite -u "sqlite://./mofa.db"
      mofa db doctor

    Running SQL on a server needs its driver: pip install 'mofa-sdk[db]' (or the
    'postgres' / 'mysql' extra). Printing and saving SQL work without it.
    """


# The seeds' one-line descriptions, for the command list of `mofa db --help`.
@db.command(short_help="Initialize database tables (print, save or run the SQL).")
@_DB_TYPE_OPTION
@click.option(
    "-o",
    "--output",
    "output",
    metavar="PATH",
    type=click.Path(dir_okay=False, allow_dash=True, path_type=Path),
    help="Write the SQL to this file (atomically; missing parent directories are created) "
    "instead of stdout; '-' means stdout.",
)
@click.option(
    "-u",
    "--database-url",
    "database_url",
    metavar="URL",
    help="Run the SQL on this database now (creates or upgrades the tables; online steps "
    "run without stopping writers; safe to repeat, and an interrupted upgrade resumes). "
    "Needs the database's driver. "
    "PostgreSQL: a direct URL; one through PgBouncer in transaction mode is refused.",
)
@click.pass_context
def init(
    ctx: click.Context, db_type: str | None, output: Path | None, database_url: str | None
) -> None:
    """Initialize persistence database tables for agents, sessions, messages and state.

    Without -o or -u, prints the SQL to stdout (also when $DATABASE_URL or
    $MOFA_DATABASE_URL is set: a note on stderr says how to run it there). With -o, saves it
    to a file to run with the database's own client. With -u (or mofa --database-url), creates
    the tables on that database directly; running it again changes nothing, and a table of the
    same name made by another program is refused before anything is changed. -t may be left
    out when the URL says the type. The URL's password is never shown.

    \b
    Examples:
      mofa db init -t postgres
      mofa db init -t postgres -o migration.sql
      psql -d mofa -f migration.sql
      mofa db init -t postgres -u "postgresql://user:pass@localhost/mofa"
      mofa db init -t mysql -u "mysql://user:pass@localhost/mofa"
      mofa db init -t sqlite -u "sqlite://./mofa.db"
      mofa db init -u "$DATABASE_URL"
      mofa db init -t postgres -u "$DIRECT_URL"    # the server itself, not PgBouncer
      mofa --database-url sqlite://./mofa.db db init -t sqlite

    \b
    URLs:
      postgresql://user:password@host:port/database   (?sslmode=require, ?host=/socket/dir)
      mysql://user:password@host:port/database        (?ssl-mode=REQUIRED, ?socket=/x.sock)
      sqlite://./relative.db   sqlite:///absolute/path.db
    Percent-encode a password holding '@', ':', '/', '?' or '#' (%40, %3A, %2F, %3F, %23).
    """
    database_url = database_url if database_url is not None else _global_url(ctx)
    url = None if database_url is None else _parse(database_url)
    db_type = _db_type(ctx, db_type, url, init=True)
    parsed = _check_url(db_type, url) if url is not None else None
    if parsed is None:
        _hint_environment_url(db_type)
    to_stdout = output is None or str(output) == "-"
    if to_stdout and (parsed is None or output is not None):
        click.echo(_script_with_header(db_type, display_name(db_type)), nl=False)
    elif output is not None:
        _save_script(db_type, output, show_hint=parsed is None)
    if parsed is not None:
        _initialize(db_type, parsed)


@db.command(short_help="Show database schema SQL.")
@_DB_TYPE_OPTION
@click.pass_context
def schema(ctx: click.Context, db_type: str | None) -> None:
    """Display the database schema SQL for a specific database type.

    The SQL is exactly what a store runs on an empty database (and what `mofa db init`
    creates): the tables agents, sessions, messages and agent_state, their indexes, and the
    mofa_schema_migrations table that records the schema version.

    \b
    Examples:
      mofa db schema -t postgres
      mofa db schema -t mysql
      mofa db schema -t sqlite
      mofa db schema -t postgres > schema.sql
    """
    global_url = _global_url(ctx)
    db_type = _db_type(ctx, db_type, None if global_url is None else _parse(global_url))
    click.echo(_script_with_header(db_type, db_type.upper()), nl=False)


def _check_url(db_type: str, parsed: DatabaseURL) -> DatabaseURL:
    """Make sure the URL names a database of type ``-t`` (usage errors: exit 2)."""
    if parsed.backend == db_type:
        return parsed
    if parsed.backend in DB_TYPES:
        raise click.UsageError(
            f"the URL is a {parsed.scheme}:// URL but -t is {db_type}; use -t {parsed.backend}, "
            f"or a {_SCHEME_FOR_TYPE[db_type]} URL to initialize a {db_type} database."
        )
    raise click.UsageError(
        f"the URL is a {parsed.scheme}:// URL, which names no SQL database; "
        f"use a {_SCHEME_FOR_TYPE[db_type]} URL with -t {db_type}."
    )


def _progress(line: str) -> None:
    """A progress line: to stderr, so stdout holds only data (the SQL)."""
    click.echo(line, err=True)


def _save_script(db_type: str, output: Path, *, show_hint: bool) -> None:
    _progress(f"→ Generating {db_type} migration script...")
    try:
        # Keeps the mode of a file it replaces; the directory sync is best effort, as
        # not every platform can open a directory. Missing parents are made, as
        # `session export -o` makes them: the path is printed below, typo and all.
        with atomic_text_file(output, make_parents=True, require_directory_sync=False) as file:
            file.write(_script_with_header(db_type, display_name(db_type)))
    except OSError as exc:
        raise CliError(cannot_write("migration script", output, exc)) from exc
    _progress(f"✓ Migration script saved to: {output}")
    if show_hint:
        _progress("You can then execute the SQL manually:")
        _progress(_CLIENT_COMMANDS[db_type].format(path=shlex.quote(str(output))))


async def _apply_schema(url: DatabaseURL) -> tuple[int, ...]:
    """Open (and close) a store on ``url``; it creates or upgrades the schema on connect."""
    async with await open_store(url) as store:
        return tuple(store.applied_migrations)


def _initialize(db_type: str, url: DatabaseURL) -> None:
    say = _progress
    say(f"→ Initializing {db_type} database...")
    say(f"  URL: {url.masked}")
    applied = run(
        lambda: _apply_schema(url), url=url.raw, describe_missing_driver=missing_driver_message
    )
    latest = schema_data.latest_version(db_type)
    if not applied:
        say(f"✓ Database schema is already up to date (version {latest}); nothing changed.")
        return
    if 1 in applied:  # a new database: the seeds' lines, whatever the number of migrations
        for table in schema_data.table_names(db_type):
            say(f"  ✓ Created table: {table}")
        say("  ✓ Created indexes")
    else:  # an upgrade: what changed
        for migration in schema_data.migrations(db_type):
            if migration.version in applied:
                say(f"  ✓ Applied migration {migration.version:04d}_{migration.name}")
    say("✓ Database tables initialized successfully!")
    if url.backend == "sqlite" and url.path == ":memory:":
        say("  Note: an in-memory SQLite database is gone when mofa exits; nothing was saved.")


def _environment_url_name() -> str | None:
    """``MOFA_DATABASE_URL`` or ``DATABASE_URL``, whichever the environment (or a ``.env``)
    sets first; None when neither is set."""
    from mofa.config import ConfigError, environment

    try:
        settings = environment(None, settings_only=True)
    except ConfigError:
        return None
    for name in ("MOFA_DATABASE_URL", "DATABASE_URL"):
        if settings.get(name, "").strip():
            return name
    return None


def _hint_environment_url(db_type: str) -> None:
    """Printing the SQL is the seeds' default; when the environment names a database, say
    on stderr how to run it there instead (without printing the URL: it may hold a
    password)."""
    name = _environment_url_name()
    if name is not None:
        _progress(
            f"Note: ${name} is set; this prints the SQL only. To create the tables there, "
            f'run: mofa db init -t {db_type} -u "${name}"'
        )


db.add_command(doctor)
