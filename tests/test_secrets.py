"""No secret of a database URL in any output.

A URL's password, its fragment and the value of every query parameter that is not a plain
connection setting (``mofa.persistence.SHOWN_PARAMETERS``) are secrets. Long random ones are
planted in each of those places, in URLs of every scheme, well formed and not, and looked for
in ``str()`` and ``repr()``, every error message, every log record and the CLI's output.
"""

from __future__ import annotations

import asyncio
import logging
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mofa.persistence import (
    SHOWN_PARAMETERS,
    InvalidURLError,
    PersistenceError,
    mask_url,
    open_store,
    parse_url,
)
from tests._cli import mofa, run_mofa
from tests.servers import postgres_database, with_credentials

#: Where nothing answers: connecting fails at once, after the URL was parsed and used.
REFUSING = "127.0.0.1:1"

#: A path under a file: no store can be made there, whoever runs the tests (a malformed
#: URL makes it relative: the test runs where "etc" is a file too).
UNUSABLE_PATH = "/etc/hostname/mofa-secrets"
#: Secrets: long enough that finding one by chance in a message is impossible; any character
#: a password may hold (percent-encoded in the URL, as URLs require).
secrets_text = st.text(
    alphabet=st.characters(blacklist_categories=("Cs", "Cc", "Zs", "Zl", "Zp")),
    min_size=16,
    max_size=40,
)
#: Parameter names that are not connection settings: the usual secret ones, and any other.
secret_names = st.one_of(
    st.sampled_from(["password", "sslpassword", "pwd", "options", "lock_timeout", "api_key"]),
    st.from_regex(r"[a-z][a-z0-9_\-]{0,15}", fullmatch=True),
).filter(lambda name: name not in SHOWN_PARAMETERS)


@dataclass(frozen=True)
class Planted:
    url: str
    secrets: tuple[str, ...]

    def leaks(self, text: str) -> list[str]:
        """The planted secrets, as written or encoded, that ``text`` shows."""
        forms = {form for secret in self.secrets for form in (secret, quote(secret, safe=""))}
        return [form for form in forms if form in text]


@st.composite
def planted_urls(draw: st.DrawFn) -> Planted:
    """A URL with secrets in its password, a parameter's value and its fragment (each one
    present or not), for any scheme, sometimes malformed."""
    scheme = draw(
        st.sampled_from(["postgresql", "postgres", "mysql", "mariadb", "sqlite", "file", "memory"])
    )
    password, value, fragment = (draw(st.none() | secrets_text) for _ in range(3))
    userinfo = "" if password is None else f"user:{quote(password, safe='')}@"
    location = f"{REFUSING}/mofa" if scheme not in ("sqlite", "file") else UNUSABLE_PATH
    shown_parameter = draw(st.sampled_from(["", "sslmode=disable", "connect_timeout=2"]))
    query = [shown_parameter] if shown_parameter else []
    if value is not None:
        query.insert(draw(st.integers(0, len(query))), f"{draw(secret_names)}={quote(value)}")
    separator = draw(st.sampled_from(["://", ":/", "//", ":"]))  # the last three: malformed
    url = f"{scheme}{separator}{userinfo}{location}"
    url += ("?" + "&".join(query) if query else "") + (
        "" if fragment is None else "#" + quote(fragment, safe="")
    )
    secrets = tuple(secret for secret in (password, value, fragment) if secret is not None)
    return Planted(url, secrets)


@contextmanager
def where_etc_is_a_file() -> Iterator[None]:
    """Run in a new directory that holds a file named ``etc``."""
    before = os.getcwd()
    with tempfile.TemporaryDirectory() as directory:
        Path(directory, "etc").write_text("not a directory\n", encoding="utf-8")
        os.chdir(directory)
        try:
            yield
        finally:
            os.chdir(before)


@contextmanager
def all_log_records() -> Iterator[list[logging.LogRecord]]:
    """Every log record of every logger, at every level, while the block runs."""
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    root = logging.getLogger()
    handler, level = Keep(logging.DEBUG), root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        yield records
    finally:
        root.removeHandler(handler)
        root.setLevel(level)


def _error_texts(error: BaseException) -> list[str]:
    return [str(error), repr(error), *(str(arg) for arg in error.args)]


async def _open(url: str) -> list[str]:
    """What opening ``url`` shows: its error, or the store's str and repr."""
    try:
        store = await open_store(url)
    except PersistenceError as exc:
        return _error_texts(exc)
    async with store:
        return [str(store), repr(store), str(store.url), repr(store.url)]


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    derandomize=True,  # the same examples in CI as here
)
@given(planted_urls())
def test_no_planted_secret_in_any_output(planted: Planted) -> None:
    shown = [mask_url(planted.url)]
    with where_etc_is_a_file(), all_log_records() as records:
        try:
            parsed = parse_url(planted.url)
        except InvalidURLError as exc:
            shown += _error_texts(exc)
        else:
            shown += [str(parsed), repr(parsed), parsed.masked]
        shown += asyncio.run(_open(planted.url))
        for args in (
            ("--database-url", planted.url, "session", "list"),
            ("--database-url", planted.url, "session", "show", "s-1", "--format", "json"),
            ("db", "init", "-t", "postgres", "-u", planted.url),
            ("db", "init", "-t", "sqlite", "-u", planted.url),
        ):
            result = mofa(*args)
            assert "Traceback" not in result.output
            shown += [result.stdout, result.stderr]
    shown += [record.getMessage() for record in records]
    leaked = [(text, planted.leaks(text)) for text in shown if planted.leaks(text)]
    assert not leaked, leaked


SECRETS = ("Pw-9f4Kq2Zx7Lm", "Sslpw-3Jd8Hs6Ty1", "Frag-5Nc2Wv8Rb0")


def _url_with_secrets(base: str) -> str:
    password, sslpassword, fragment = SECRETS
    return (
        with_credentials(base, "postgres", password)
        + f"?sslmode=disable&sslpassword={sslpassword}#{fragment}"
    )


@pytest.mark.parametrize(
    "args",
    [
        (
            "--database-url",
            "postgresql://u:Pw-9f4Kq2Zx7Lm@127.0.0.1:1/x?sslpassword=Sslpw-3Jd8Hs6Ty1"
            "#Frag-5Nc2Wv8Rb0",
            "session",
            "list",
        ),
        ("db", "init", "-t", "sqlite", "-u", "sqlite:///tmp/x.db?sslpassword=Sslpw-3Jd8Hs6Ty1"),
        (
            "db",
            "init",
            "-t",
            "postgres",
            "-u",
            "postgresql://u:Pw-9f4Kq2Zx7Lm@127.0.0.1:1/x"
            "?sslpassword=Sslpw-3Jd8Hs6Ty1#Frag-5Nc2Wv8Rb0",
        ),
    ],
)
def test_no_secret_in_the_output_of_a_mofa_process(args: tuple[str, ...], tmp_path: Path) -> None:
    env = {name: value for name, value in os.environ.items() if name != "MOFA_DATABASE_URL"}
    finished = run_mofa(*args, cwd=tmp_path, env=env)
    assert finished.returncode != 0
    assert finished.stderr.splitlines()[-1].startswith("Error: ")
    for secret in SECRETS:
        assert secret not in finished.stdout + finished.stderr


@pytest.mark.postgres
async def test_an_open_store_and_db_init_show_no_secret() -> None:
    """On the real server (which trusts 127.0.0.1, so any password opens the store)."""
    with postgres_database("mofa_secrets") as base:
        url = _url_with_secrets(base)
        with all_log_records() as records:
            async with await open_store(url) as store:
                shown = [str(store), repr(store), str(store.url), repr(store.url)]
            result = await asyncio.to_thread(mofa, "db", "init", "-t", "postgres", "-u", url)
        assert result.exit_code == 0, result.output
        assert "  URL: " + mask_url(url) in result.output
        shown += [result.output, *(record.getMessage() for record in records)]
        for secret in SECRETS:
            assert all(secret not in text for text in shown), secret


@pytest.mark.postgres
async def test_a_server_error_repeating_a_parameter_value_is_scrubbed() -> None:
    """PostgreSQL quotes a refused setting's value back ("invalid value for parameter")."""
    secret = "Lock-7Gh2Ks9Pq4"
    with postgres_database("mofa_secrets") as base, pytest.raises(PersistenceError) as caught:
        await open_store(f"{base}?lock_timeout={secret}")
    assert "lock_timeout" in str(caught.value)
    assert secret not in str(caught.value)
    assert secret not in repr(caught.value)
