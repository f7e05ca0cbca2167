"""The MySQL/MariaDB server the tests use: its address and the admin connection."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from tests.servers import MYSQL_ADMIN_URL, MYSQL_SERVER_URL, mysql_rows

HOST = urlsplit(MYSQL_ADMIN_URL).hostname or "127.0.0.1"
PORT = urlsplit(MYSQL_ADMIN_URL).port or 3306
#: A password full of URL-special characters (a test account gets it plus a random part).
SPECIAL_PASSWORD = "p@ss:w/rd#?&"


async def admin(sql: str, *args: object) -> list[tuple[Any, ...]]:
    """Run one statement as the admin user, on no database; return its rows."""
    return await mysql_rows(MYSQL_SERVER_URL, sql, *args)
