"""The fixtures the MySQL/MariaDB test modules share: a module's throwaway database and a
test account (the server's address and the admin connection are in ``_server``)."""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import pytest

from tests.backends.mysql._server import SPECIAL_PASSWORD
from tests.servers import (
    database_name,
    drop_mofa_tables,
    mysql_account,
    mysql_database,
)


@pytest.fixture(scope="module")
def database_url(request: pytest.FixtureRequest) -> Iterator[str]:
    """A throwaway database for the test module, named after it."""
    module = request.module.__name__.rpartition(".")[2].removeprefix("test_")
    with mysql_database(f"mofa_{module}") as url:
        yield url


@pytest.fixture
def database(database_url: str) -> str:
    return database_name(database_url)


@pytest.fixture
async def fresh_url(database_url: str) -> str:
    """The module's database, emptied of every mofa table."""
    await drop_mofa_tables("mysql", database_url)
    return database_url


@pytest.fixture
def user(database: str) -> Iterator[tuple[str, str]]:
    """An account of any host ('%', so it may log in over the socket and over TCP) with all
    privileges on the test database, and a password full of URL-special characters."""
    password = f"{SPECIAL_PASSWORD}{secrets.token_hex(3)}%"
    with mysql_account(f"ALL PRIVILEGES ON `{database}`.*", password=password) as account:
        yield account
