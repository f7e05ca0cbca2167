"""A scoped write racing a delete-and-recreate by another owner on the servers.

The scope is checked by the statement that writes, but a statement takes time: a trigger
makes the row's insert sleep, and meanwhile another owner deletes the session and creates
one with the same id. The first owner's write must never land in the second owner's
session (it is either stored in the old session, which the delete then removes, or refused).
"""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from mofa.persistence import BaseStore, Owner, SessionNotFoundError
from tests.conftest import _params
from tests.servers import server_rows

ALICE = Owner("acme", "alice", "support-acme")
_SLEEP = 0.6

_SLOW_INSERT = {
    "postgres": [
        "CREATE OR REPLACE FUNCTION mofa_test_slow() RETURNS trigger AS "
        f"$$ BEGIN PERFORM pg_sleep({_SLEEP}); RETURN NEW; END $$ LANGUAGE plpgsql",
        "CREATE TRIGGER mofa_test_slow BEFORE INSERT ON {table} "
        "FOR EACH ROW EXECUTE FUNCTION mofa_test_slow()",
    ],
    "mysql": [
        "CREATE TRIGGER mofa_test_slow BEFORE INSERT ON {table} "
        f"FOR EACH ROW SET @mofa_test_slept = SLEEP({_SLEEP})",
    ],
}
_DROP = {
    "postgres": "DROP TRIGGER IF EXISTS mofa_test_slow ON {table}",
    "mysql": "DROP TRIGGER IF EXISTS mofa_test_slow",
}


async def _write(store: BaseStore, table: str) -> None:
    if table == "messages":
        await store.append_message("s", "user", "alice's secret", owner=ALICE)
    else:
        await store.save_state("s", {"alice": "secret"}, owner=ALICE)


@pytest.mark.parametrize("backend", _params(["postgres", "mysql"]))
@pytest.mark.parametrize("table", ["messages", "agent_state"])
async def test_a_slow_scoped_write_never_lands_in_the_next_owners_session(
    store: BaseStore, empty_url: str, backend: str, table: str
) -> None:
    await store.create_session("s", agent_id="support-acme", user_id="alice", tenant_id="acme")
    for statement in _SLOW_INSERT[backend]:
        await server_rows(backend, empty_url, statement.format(table=table))
    try:
        write = asyncio.create_task(_write(store, table))
        await asyncio.sleep(_SLEEP / 3)  # the write is inside its statement now
        await store.delete_session("s")
        await store.create_session("s", agent_id="support", user_id="bob", tenant_id="globex")
        # Refused is as good as stored in the old session (which the delete removed).
        with contextlib.suppress(SessionNotFoundError):
            await write
    finally:
        await server_rows(backend, empty_url, _DROP[backend].format(table=table))
    assert await store.list_messages("s") == []
    assert await store.list_states("s") == []
    session = await store.get_session("s")
    assert session is not None
    assert (session.tenant_id, session.message_count) == ("globex", 0)
