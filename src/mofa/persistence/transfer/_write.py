"""Writing ``mofa-session/1``: one session as json or yaml, any number as jsonl.

A session's messages are read in ``seq`` order, only up to the count its header was read
with (an append made meanwhile is not half in the export), and written to a spool file
while their hash is taken: the header, which holds the hash, comes first in the file. So
an export holds one message in memory at a time, however long the session.
"""

from __future__ import annotations

import secrets
import shutil
import tempfile
from collections.abc import Callable
from typing import IO, Any, Final, Literal

import orjson
import yaml

from mofa.persistence._contract import Store
from mofa.persistence._entities import Agent, Owner, Session
from mofa.persistence.errors import QueryError
from mofa.persistence.transfer._canonical import (
    MessageHash,
    header_object,
    message_object,
    state_object,
)

__all__ = ["write_session"]

Format = Literal["json", "yaml", "jsonl"]
#: Messages read per query.
BATCH_SIZE: Final = 1000
_JSON: Final = orjson.OPT_SORT_KEYS
_PRETTY: Final = orjson.OPT_SORT_KEYS | orjson.OPT_INDENT_2


class _Dumper(yaml.SafeDumper):
    """PyYAML's pure-Python safe dumper (libyaml's may differ in a corner, and equal data
    must give equal bytes on every machine), with text that holds a character YAML reads
    as a line break (NEL, U+2028, U+2029) always double-quoted: in single quotes or plain,
    a reader folds it into a space."""


def _represent_text(dumper: yaml.SafeDumper, text: str) -> yaml.ScalarNode:
    style = '"' if any(char in text for char in "\x85\u2028\u2029") else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", text, style=style)


_Dumper.add_representer(str, _represent_text)


def _yaml(value: Any) -> bytes:
    text: str = yaml.dump(
        value,
        Dumper=_Dumper,
        sort_keys=True,
        allow_unicode=True,
        default_flow_style=False,
        width=2**31 - 1,
    )
    return text.encode()


def _message_json(item: dict[str, Any]) -> bytes:
    # As orjson indents the item inside the document's "messages" list.
    return b"\n    " + orjson.dumps(item, option=_PRETTY).replace(b"\n", b"\n    ")


def _message_line(item: dict[str, Any], compact: bytes) -> bytes:
    # "type" sorts after every key of a message ("timestamp" included): the line is the
    # hashed compact JSON with it added last.
    return compact[:-1] + b',"type":"message"}\n'


_ITEM: Final[dict[str, Callable[[dict[str, Any], bytes], bytes]]] = {
    "json": lambda item, _compact: _message_json(item),
    "yaml": lambda item, _compact: _yaml([item]),
    "jsonl": _message_line,
}


async def _spool_messages(
    store: Store, session: Session, kind: Format, spool: IO[bytes], owner: Owner | None
) -> str:
    """Write the session's messages (seq 1 to its count) to ``spool``; their hash."""
    digest = MessageHash()
    render = _ITEM[kind]
    first = True
    async for message in store.iter_messages(
        session.session_id, batch_size=BATCH_SIZE, owner=owner
    ):
        if message.seq > session.message_count:
            break  # appended after the header was read: the next export has it
        item = message_object(message)
        data = render(item, digest.add(item))
        if kind == "json" and not first:
            data = b"," + data
        first = False
        spool.write(data)
    if digest.count != session.message_count:
        raise QueryError(
            f"Session {session.session_id!r} changed while it was exported (it held "
            f"{session.message_count} messages, {digest.count} were read); export it again."
        )
    return digest.hexdigest()


async def write_session(
    store: Store, session: Session, output: IO[bytes], kind: Format, owner: Owner | None = None
) -> int:
    """Write ``session`` (as :meth:`Store.get_session` returned it) to ``output``; the
    number of messages written."""
    agent: Agent | None = None
    if session.agent_id is not None:
        agent = await store.get_agent(session.agent_id)
    states = await store.list_states(session.session_id, owner=owner)
    state_items = [state_object(state) for state in reversed(states)]
    with tempfile.TemporaryFile(prefix="mofa-export-") as spool:
        sha256 = await _spool_messages(store, session, kind, spool, owner)
        header = header_object(session, agent, sha256)
        spool.seek(0)
        if kind == "jsonl":
            output.write(orjson.dumps({**header, "type": "session"}, option=_JSON) + b"\n")
            for item in state_items:
                output.write(orjson.dumps({**item, "type": "state"}, option=_JSON) + b"\n")
            shutil.copyfileobj(spool, output)
            return session.message_count
        # json and yaml: the document with the messages list cut in where a marker stands.
        marker = f"messages-{secrets.token_hex(16)}"
        document = {**header, "agent_state": state_items, "messages": marker}
        if kind == "json":
            before, after = orjson.dumps(document, option=_PRETTY).split(f'"{marker}"'.encode())
            output.write(before + b"[")
            shutil.copyfileobj(spool, output)
            output.write((b"\n  ]" if session.message_count else b"]") + after + b"\n")
        else:
            before, after = _yaml(document).split(f"messages: {marker}\n".encode())
            output.write(before + (b"messages:\n" if session.message_count else b"messages: []\n"))
            shutil.copyfileobj(spool, output)
            output.write(after)
    return session.message_count
