"""MySQL/MariaDB specifics the conformance suite cannot express: URL forms, users and
privileges, the errors a user sees, packet limits, and how times and ids are stored.

Runs against the server of ``MOFA_TEST_MYSQL_URL`` (default: the local MariaDB), each module
run in its own throwaway database; test users are created with random names and dropped.
"""

from __future__ import annotations

import asyncio
import secrets
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import quote

import pytest

from mofa.persistence import (
    AuthenticationError,
    DatabaseNotFoundError,
    InvalidInputError,
    InvalidURLError,
    MySqlStore,
    PermissionDeniedError,
    StoreConnectionError,
    open_store,
)
from tests.backends.mysql._server import HOST, PORT, admin
from tests.conftest import all_versions
from tests.reliability._harness import free_port, make_certificate
from tests.servers import (
    MYSQL_ADMIN_URL,
    mysql_account,
    mysql_connection,
    mysql_rows,
    require_server,
    server_unavailable,
    skip_or_fail,
    with_credentials,
    with_database,
)

pytestmark = pytest.mark.mysql


async def _round_trip(url: str) -> None:
    async with await open_store(url) as store:
        assert isinstance(store, MySqlStore)
        session = await store.create_session(agent_id="agent", user_id="u")
        message = await store.append_message(session.session_id, "user", "héllo 🎉")
        assert [m.content for m in await store.list_messages(session.session_id)] == [
            message.content
        ]
        assert await store.delete_session(session.session_id)


# ------------------------------------------------------------------------------- URL forms


@pytest.mark.parametrize("scheme", ["mysql", "mariadb"])
async def test_schemes_with_percent_encoded_password(
    fresh_url: str, database: str, user: tuple[str, str], scheme: str
) -> None:
    name, password = user
    url = with_credentials(fresh_url, name, password)
    await _round_trip(url.replace("mysql://", f"{scheme}://", 1))


async def test_password_as_query_parameter(
    fresh_url: str, database: str, user: tuple[str, str]
) -> None:
    name, password = user
    url = with_credentials(fresh_url, name, None)
    await _round_trip(f"{url}?password={quote(password, safe='')}")


async def test_unix_socket(fresh_url: str, database: str, user: tuple[str, str]) -> None:
    [(path,)] = await admin("SELECT @@socket")
    if HOST not in ("127.0.0.1", "localhost") or not Path(path).exists():
        server_unavailable("mysql", f"its socket {path} is not on this machine")
    name, password = user
    url = (
        f"mysql://{quote(name, safe='')}:{quote(password, safe='')}@localhost/{database}"
        f"?socket={path}"
    )
    await _round_trip(url)
    with pytest.raises(StoreConnectionError, match=r"no socket file at /nonexistent/mysqld\.sock"):
        await open_store(f"mysql://root@localhost/{database}?socket=/nonexistent/mysqld.sock")


@pytest.mark.parametrize("mode", ["DISABLED", "PREFERRED", "preferred"])
async def test_ssl_modes_that_connect_without_server_ssl(fresh_url: str, mode: str) -> None:
    await _round_trip(f"{fresh_url}?ssl-mode={mode}")


async def test_ssl_required(fresh_url: str) -> None:
    [(have_ssl,)] = await admin("SELECT @@have_ssl")
    url = f"{fresh_url}?ssl-mode=REQUIRED"
    if have_ssl == "YES":
        await _round_trip(url)
        return
    with pytest.raises(StoreConnectionError, match="ssl-mode=REQUIRED") as caught:
        await open_store(url)
    assert "have_ssl" in str(caught.value)


@pytest.mark.parametrize(
    ("query", "match"),
    [
        ("ssl-mode=SOMETIMES", "Unknown ssl-mode 'SOMETIMES'"),
        ("sslmode=require", "Unknown MySQL URL parameter 'sslmode'"),
    ],
)
async def test_bad_url_parameters(fresh_url: str, query: str, match: str) -> None:
    with pytest.raises(InvalidURLError, match=match):
        await open_store(f"{fresh_url}?{query}")


async def test_url_without_database() -> None:
    with pytest.raises(InvalidURLError, match="names no database"):
        await open_store(f"mysql://root:secret@{HOST}:{PORT}")


# The ssl-ca / ssl-cert / ssl-key files are read before connecting: the URLs below point at a
# free port, so a check that came too late would be a StoreConnectionError instead.


def _unreachable(query: str) -> str:
    return f"mysql://root:s3cret-pw@127.0.0.1:{free_port()}/mofa?{query}"


async def test_missing_ssl_file_is_named_before_connecting() -> None:
    url = _unreachable("ssl-cert=/nonexistent.pem")
    with pytest.raises(InvalidURLError) as caught:
        await open_store(url)
    assert str(caught.value) == (
        f"The ssl-cert file '/nonexistent.pem' in '{url.replace('s3cret-pw', '****')}' does "
        "not exist; give the path of a PEM file this process can read."
    )
    assert caught.value.__cause__ is None
    with pytest.raises(InvalidURLError, match=r"^The ssl-ca file '/nonexistent\.pem' in .* does"):
        await open_store(_unreachable("ssl-ca=/nonexistent.pem&ssl-mode=VERIFY_CA"))
    with pytest.raises(InvalidURLError, match="is a directory, not a file"):
        await MySqlStore.connect(_unreachable("ssl-ca=/"))


@pytest.fixture(scope="module")
def pem(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """server.crt + server.key, other/server.key (of another certificate), an encrypted copy
    of server.key and a text file, made with openssl."""
    directory = tmp_path_factory.mktemp("pem")
    (directory / "other").mkdir()
    if not (make_certificate(directory) and make_certificate(directory / "other")):
        skip_or_fail("openssl is not installed")
    encrypted = ["-aes128", "-passout", "pass:a-passphrase", "-out", "encrypted.key"]
    subprocess.run(
        ["openssl", "pkey", "-in", "server.key", *encrypted],
        cwd=directory,
        capture_output=True,
        timeout=60,
        check=True,
    )
    (directory / "notes.txt").write_text("not a certificate\n")
    return directory


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("ssl-ca={d}/notes.txt", "The ssl-ca file '{d}/notes.txt' in '"),
        ("ssl-ca={d}/notes.txt", "' is not a PEM certificate (no -----BEGIN CERTIFICATE"),
        ("ssl-ca={d}/server.key&ssl-mode=VERIFY_CA", "'{d}/server.key' in '"),
        ("ssl-cert={d}/notes.txt&ssl-key={d}/server.key", "ssl-cert file '{d}/notes.txt'"),
        ("ssl-cert={d}/server.crt&ssl-key=/nonexistent.key", "'/nonexistent.key' in '"),
        ("ssl-cert={d}/server.crt&ssl-key={d}/notes.txt", "is not a PEM private key"),
        (
            "ssl-cert={d}/server.crt&ssl-key={d}/other/server.key",
            "does not belong to the certificate in ssl-cert",
        ),
        ("ssl-cert={d}/server.crt&ssl-key={d}/encrypted.key", "protected by a passphrase"),
        ("ssl-cert={d}/server.crt", "holds a certificate but no private key; add ssl-key="),
        ("ssl-key={d}/server.key", "has ssl-key but no ssl-cert; add ssl-cert="),
    ],
)
async def test_unusable_ssl_files_are_named_before_connecting(
    pem: Path, query: str, expected: str
) -> None:
    with pytest.raises(InvalidURLError) as caught:
        await open_store(_unreachable(query.format(d=pem)))
    message = str(caught.value)
    assert expected.format(d=pem) in message
    assert message.endswith(".")
    assert "\n" not in message
    assert "s3cret-pw" not in message


async def test_usable_ssl_files_pass_the_check(pem: Path) -> None:
    # Only the connection fails: nothing listens on the port.
    with pytest.raises(StoreConnectionError, match="connection refused"):
        await open_store(
            _unreachable(
                f"ssl-mode=VERIFY_CA&ssl-ca={pem}/other/server.crt"
                f"&ssl-cert={pem}/server.crt&ssl-key={pem}/server.key"
            )
        )


# ---------------------------------------------------------------------------------- errors


async def test_server_not_running() -> None:
    port = free_port()
    with pytest.raises(StoreConnectionError) as caught:
        await open_store(f"mysql://mofa:s3cret-pw@127.0.0.1:{port}/mofa")
    message = str(caught.value)
    assert message == (
        f"Failed to connect to MySQL at 127.0.0.1:{port}: connection refused — is the server "
        f"running? Check with: mysqladmin -h 127.0.0.1 -P {port} ping"
    )
    assert "s3cret-pw" not in message
    with pytest.raises(StoreConnectionError, match="mariadb-admin"):
        await open_store(f"mariadb://mofa@127.0.0.1:{port}/mofa")


async def test_wrong_password_names_the_user_not_the_password(
    fresh_url: str, database: str, user: tuple[str, str]
) -> None:
    name, _ = user
    with pytest.raises(AuthenticationError) as caught:
        await open_store(with_credentials(fresh_url, name, "wrong-Secret-42"))
    message = str(caught.value)
    assert repr(name) in message
    assert "access denied" in message
    assert "wrong-Secret-42" not in message
    assert "wrong-Secret-42" not in repr(caught.value)


async def test_unknown_database() -> None:
    require_server("mysql")
    missing = f"mofa_missing_{secrets.token_hex(3)}"
    with pytest.raises(DatabaseNotFoundError) as caught:
        await open_store(with_database(MYSQL_ADMIN_URL, missing))
    assert str(caught.value) == (
        f"Failed to connect to MySQL at {HOST}:{PORT}: database '{missing}' does not exist "
        f"— create it with: CREATE DATABASE {missing}"
    )


@pytest.fixture
def reader(database: str) -> Iterator[tuple[str, str]]:
    """A user that may only read the test database."""
    with mysql_account(f"SELECT ON `{database}`.*", password=secrets.token_hex(8)) as account:
        yield account


async def test_permission_denied_for_a_table(
    fresh_url: str, database: str, reader: tuple[str, str]
) -> None:
    async with await open_store(fresh_url) as store:  # creates the schema
        await store.create_session("s")
    name, password = reader
    async with await open_store(with_credentials(fresh_url, name, password)) as store:
        assert (await store.get_session("s")) is not None
        with pytest.raises(PermissionDeniedError) as caught:
            await store.create_session("t", agent_id="a")
        message = str(caught.value)
        assert message.startswith("SQL error: permission denied for table agents — grant ")
        # The account as GRANT names it (its host pattern), not the client's address.
        assert f"GRANT SELECT, INSERT, UPDATE, DELETE ON {database}.* TO '{name}'@'%'" in message
        with pytest.raises(PermissionDeniedError, match="for table sessions"):
            await store.append_message("s", "user", "x")
        assert await store.count_messages("s") == 0


async def test_user_that_cannot_create_the_schema(
    fresh_url: str, database: str, reader: tuple[str, str]
) -> None:
    name, password = reader
    with pytest.raises(PermissionDeniedError, match="may not create the mofa schema"):
        await open_store(with_credentials(fresh_url, name, password))


async def test_minimal_privilege_user_runs_the_store(fresh_url: str, database: str) -> None:
    """The seeds' "Database User Permissions": SELECT, INSERT, UPDATE, DELETE only."""
    async with await open_store(fresh_url) as store:
        assert store.applied_migrations == all_versions("mysql")
    privileges = f"SELECT, INSERT, UPDATE, DELETE ON `{database}`.*"
    with mysql_account(privileges, password="secure_password") as (name, password):
        async with await open_store(with_credentials(fresh_url, name, password)) as store:
            assert store.applied_migrations == ()
            session = await store.create_session(agent_id="my-agent", user_id="u1")
            await store.append_message(session.session_id, "user", "Hello")
            await store.save_state(session.session_id, {"step": 1})
            assert [m.content for m in await store.list_messages(session.session_id)] == ["Hello"]
            assert [s.session_id for s in await store.list_sessions(user_id="u1")] == [
                session.session_id
            ]
            assert await store.delete_session(session.session_id)
            assert await store.get_session(session.session_id) is None


async def test_lost_connection_mid_call(fresh_url: str, database: str) -> None:
    """A call whose connection is killed fails with StoreConnectionError; the store lives on."""
    store = await open_store(fresh_url)
    try:
        await store.create_session("s")
        async with mysql_connection(fresh_url) as blocker, blocker.cursor() as cursor:
            # Hold the session's row lock.
            await cursor.execute("START TRANSACTION")
            await cursor.execute("SELECT * FROM sessions WHERE session_id = 's' FOR UPDATE")
            await cursor.fetchall()
            blocked = asyncio.create_task(store.append_message("s", "user", "lost"))
            victim = None
            for _ in range(200):
                await asyncio.sleep(0.02)
                rows = await admin(
                    "SELECT id FROM information_schema.processlist WHERE db = %s AND "
                    "info LIKE %s AND id <> CONNECTION_ID()",
                    database,
                    "%UPDATE sessions SET message_count%",
                )
                if rows:
                    victim = rows[0][0]
                    break
            assert victim is not None, "the append never reached the server"
            await admin(f"KILL CONNECTION {int(victim)}")
            with pytest.raises(StoreConnectionError, match="Lost the connection to MySQL"):
                await blocked
            await cursor.execute("ROLLBACK")
        assert await store.count_messages("s") == 0
        assert (await store.append_message("s", "user", "after")).seq == 1
        assert [m.content for m in await store.list_messages("s")] == ["after"]
    finally:
        await store.close()


async def test_missing_driver_names_the_extra(fresh_url: str) -> None:
    script = textwrap.dedent(
        """
        import asyncio, sys
        sys.modules["asyncmy"] = None  # as if it were not installed
        from mofa.persistence import MissingDependencyError, open_store
        try:
            asyncio.run(open_store(sys.argv[1]))
        except MissingDependencyError as exc:
            print(exc)
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script, fresh_url],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert "pip install 'mofa-sdk[mysql]'" in result.stdout


async def test_unknown_option(fresh_url: str) -> None:
    with pytest.raises(InvalidInputError, match="Unknown MySqlStore option 'pool_sise'"):
        await MySqlStore.connect(fresh_url, pool_sise=3)


# ------------------------------------------------------------------------- sizes and storage


async def test_ten_megabytes_and_the_packet_limit(fresh_url: str) -> None:
    [(max_packet,)] = await admin("SELECT @@max_allowed_packet")
    async with await open_store(fresh_url) as store:
        await store.create_session("s")
        big = "末尾🎉" + "0123456789abcdef" * (10 * 65536)
        assert (await store.append_message("s", "assistant", big)).seq == 1
        [loaded] = await store.list_messages("s")
        assert loaded.content == big
        too_big = "x" * (int(max_packet) + 1)
        with pytest.raises(InvalidInputError, match="max_allowed_packet"):
            await store.append_message("s", "user", too_big)
        from mofa.persistence import NewMessage

        with pytest.raises(InvalidInputError, match="max_allowed_packet"):
            await store.append_messages("s", [NewMessage("user", too_big)])
        # Quotes are escaped on the wire (two bytes each), and metadata counts too.
        quotes = "'" * (int(max_packet) // 2 + 1024)
        with pytest.raises(InvalidInputError, match="max_allowed_packet"):
            await store.append_message("s", "user", quotes)
        with pytest.raises(InvalidInputError, match="max_allowed_packet"):
            await store.append_message("s", "user", "small", metadata={"blob": too_big})
        with pytest.raises(InvalidInputError, match="max_allowed_packet"):
            await store.save_state("s", {"blob": too_big})
        assert await store.count_messages("s") == 1
        assert await store.get_state("s") is None
        assert (await store.append_message("s", "user", "still fine")).seq == 2


async def test_times_are_stored_as_naive_utc(fresh_url: str, database: str) -> None:
    async with await open_store(fresh_url) as store:
        await store.create_session("s")
        written = datetime(2024, 2, 28, 12, 30, 5, 123456, tzinfo=UTC)
        await store.append_message("s", "user", "x", timestamp=written)
    rows = await mysql_rows(fresh_url, "SELECT timestamp FROM messages")
    assert rows[0][0] == written.replace(tzinfo=None)


async def test_ids_are_case_and_space_exact(fresh_url: str) -> None:
    async with await open_store(fresh_url) as store:
        for session_id in ("Ab", "ab", "ab ", "ÄB"):
            await store.create_session(session_id, user_id=session_id)
        for session_id in ("Ab", "ab", "ab ", "ÄB"):
            listed = await store.list_sessions(user_id=session_id)
            assert [s.session_id for s in listed] == [session_id]


async def test_concurrent_state_snapshots_get_distinct_versions(fresh_url: str) -> None:
    async with await open_store(fresh_url) as store:
        await store.create_session("s")
        saved = await asyncio.gather(*(store.save_state("s", {"n": n}) for n in range(20)))
        assert sorted(state.version for state in saved) == list(range(1, 21))
        assert [s.version for s in await store.list_states("s")] == list(range(20, 0, -1))


def test_connecting_from_a_plain_script(database_url: str) -> None:
    """open_store works from asyncio.run in a fresh process (no fixtures, no event loop)."""
    script = textwrap.dedent(
        """
        import asyncio, sys
        from mofa.persistence import open_store
        async def main(url):
            async with await open_store(url) as store:
                s = await store.create_session()
                print((await store.append_message(s.session_id, "user", "hi")).seq)
        asyncio.run(main(sys.argv[1]))
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script, database_url], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "1"
