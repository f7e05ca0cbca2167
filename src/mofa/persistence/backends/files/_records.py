"""The JSON records in the store's files, encoded and read back: a message's log line, a
state's log record, a session's header (which becomes a :class:`Session` with its count from
the log's summary) and index entry, and an agent's record. Agents are read and written here
too: one record file each, replaced atomically under the agent's lock."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import orjson

from mofa.persistence._base import EncodedMessage
from mofa.persistence._codec import ROLES, damaged_record, format_time, parse_time
from mofa.persistence._entities import Agent, AgentState, Message, Owner, Session
from mofa.persistence.backends.files._layout import RECORD_FORMAT, Layout, SessionFiles
from mofa.persistence.backends.files._log import count_and_time, parse
from mofa.persistence.backends.files._tree import FileTree
from mofa.persistence.errors import AgentExistsError, ConflictError


def message_line(message: EncodedMessage, seq: int, end: int, at: str, ts: str) -> bytes:
    """One log line; ``at`` is when it was written, ``ts`` the message's own time."""
    return b"".join(
        (
            b'{"seq":%d,"end":%d,"at":"%s","ts":"%s","role":"%s","metadata":'
            % (seq, end, at.encode(), ts.encode(), message.role.value.encode()),
            message.metadata_json.encode("utf-8"),
            b',"content":',
            orjson.dumps(message.content),
            b"}\n",
        )
    )


def message_from(session_id: str, record: dict[str, Any]) -> Message:
    # Positional: this runs once per loaded message, and keywords cost 40% more here.
    try:
        metadata = record["metadata"]
        if type(metadata) is not dict:
            raise TypeError("metadata is not a JSON object")
        return Message(
            session_id,
            record["seq"],
            ROLES[record["role"]],
            record["content"],
            metadata,
            parse_time(record["ts"]),
        )
    except (KeyError, TypeError, ValueError) as exc:  # a log line edited by hand
        raise damaged_record(
            f"message {record.get('seq')} of session {session_id!r}",
            {
                "role": record.get("role"),
                "metadata": record.get("metadata"),
                "timestamp": record.get("ts"),
            },
            exc,
            session_id=session_id,
        ) from exc


def state_from(session_id: str, record: dict[str, Any]) -> AgentState:
    try:
        state = record["state"]
        if type(state) is not dict:
            raise TypeError("state is not a JSON object")
        return AgentState(session_id, record["version"], state, parse_time(record["at"]))
    except (KeyError, TypeError, ValueError) as exc:
        raise damaged_record(
            f"state version {record.get('version')} of session {session_id!r}",
            {"state": record.get("state"), "created_at": record.get("at")},
            exc,
            session_id=session_id,
        ) from exc


def header_bytes(session: Session, metadata_json: str) -> bytes:
    return (
        b'{"format":%d,"session_id":' % RECORD_FORMAT
        + orjson.dumps(session.session_id)
        + b',"agent_id":'
        + orjson.dumps(session.agent_id)
        + b',"user_id":'
        + orjson.dumps(session.user_id)
        + b',"tenant_id":'
        + orjson.dumps(session.tenant_id)
        + b',"status":'
        + orjson.dumps(session.status)
        + b',"created_at":'
        + orjson.dumps(format_time(session.created_at))
        + b',"updated_at":'
        + orjson.dumps(format_time(session.updated_at))
        + b',"expires_at":'
        + orjson.dumps(None if session.expires_at is None else format_time(session.expires_at))
        + b',"metadata":'
        + metadata_json.encode("utf-8")
        + b"}\n"
    )


def index_bytes(session_id: str, agent_id: str | None) -> bytes:
    """A session's index entry: which agent's directory holds its files."""
    return orjson.dumps(
        {"session_id": session_id, "agent_id": agent_id}, option=orjson.OPT_APPEND_NEWLINE
    )


def agent_bytes(agent: Agent) -> bytes:
    return orjson.dumps(
        {
            "format": RECORD_FORMAT,
            "id": agent.id,
            "name": agent.name,
            "state": agent.state,
            "started_at": format_time(agent.started_at),
            "provider": agent.provider,
            "model": agent.model,
            "description": agent.description,
            "created_at": format_time(agent.created_at),
            "updated_at": format_time(agent.updated_at),
            "tenant_id": agent.tenant_id,
        },
        option=orjson.OPT_APPEND_NEWLINE,
    )


def agent_from(record: dict[str, Any]) -> Agent:
    try:
        return Agent(
            id=record["id"],
            name=record["name"],
            state=record["state"],
            started_at=parse_time(record["started_at"]),
            provider=record["provider"],
            model=record["model"],
            description=record["description"],
            created_at=parse_time(record["created_at"]),
            updated_at=parse_time(record["updated_at"]),
            # Records written before tenants were recorded have no such key: no tenant.
            tenant_id=record.get("tenant_id"),
        )
    except (KeyError, TypeError, ValueError) as exc:  # a record edited by hand
        fields = {key: record.get(key) for key in ("started_at", "created_at", "updated_at")}
        raise damaged_record(f"agent {record.get('id')!r}", fields, exc) from exc


def owned(header: dict[str, Any], owner: Owner) -> bool:
    """Whether the session of a header (or list line) is inside ``owner``'s scope: each id
    equal, a ``None`` one matching only a session without that id (as :meth:`Owner.owns`)."""
    return bool(
        header["tenant_id"] == owner.tenant_id
        and header["user_id"] == owner.user_id
        and header["agent_id"] == owner.agent_id
    )


def read_record(tree: FileTree, path: Path) -> dict[str, Any] | None:
    """The JSON object in ``path``; None if the file is missing or holds no JSON object."""
    return parse(tree.read(path) or b"")


def read_header(tree: FileTree, files: SessionFiles, session_id: str) -> dict[str, Any] | None:
    header = read_record(tree, files.header)
    if header is None:
        return None
    if header.get("session_id") != session_id:
        raise ConflictError(
            f"The session file {files.header} holds session {header.get('session_id')!r}, "
            f"not {session_id!r}; the store directory was edited by hand."
        )
    return header


def session_from(tree: FileTree, header: dict[str, Any], files: SessionFiles) -> Session:
    count, last_append = count_and_time(tree, files)
    updated_at: Any = header.get("updated_at")
    expires_at = header.get("expires_at")
    try:
        if last_append is not None and last_append > updated_at:
            updated_at = last_append  # fixed-width UTC text: text order is time order
        metadata = header["metadata"]
        if type(metadata) is not dict:
            raise TypeError("metadata is not a JSON object")
        return Session(
            session_id=header["session_id"],
            agent_id=header["agent_id"],
            user_id=header["user_id"],
            tenant_id=header["tenant_id"],
            status=header["status"],
            metadata=metadata,
            message_count=count,
            created_at=parse_time(header["created_at"]),
            updated_at=parse_time(updated_at),
            expires_at=None if expires_at is None else parse_time(expires_at),
        )
    except (KeyError, TypeError, ValueError) as exc:  # a header edited by hand
        session_id = header["session_id"]  # checked against the id read by every caller
        fields = {"metadata": header.get("metadata"), "created_at": header.get("created_at")}
        raise damaged_record(
            f"session {session_id!r}",
            {**fields, "updated_at": updated_at, "expires_at": expires_at},
            exc,
            session_id=session_id,
        ) from exc


def read_agent(tree: FileTree, layout: Layout, agent_id: str) -> Agent | None:
    record = read_record(tree, layout.agent_path(agent_id))
    if record is None or record.get("id") != agent_id:
        return None
    return agent_from(record)


def upsert_agent(tree: FileTree, layout: Layout, agent: Agent, owner: Owner | None) -> Agent:
    path = layout.agent_path(agent.id)
    with tree.flocked(layout.agent_lock_path(agent.id)):
        # The tenant is checked on the record this lock-holding read returns, so no other
        # upsert can change it in between; a refused upsert writes nothing.
        existing = read_agent(tree, layout, agent.id)
        if existing is not None:
            if owner is not None and existing.tenant_id != owner.tenant_id:
                raise AgentExistsError(agent.id)
            # An update keeps who registered the agent, and when.
            agent = dataclasses.replace(
                agent, created_at=existing.created_at, tenant_id=existing.tenant_id
            )
        tree.replace(path, agent_bytes(agent))
    return agent


def list_agents(tree: FileTree, layout: Layout, limit: int | None) -> list[Agent]:
    agents = []
    for name, _is_dir in tree.entries(layout.agents):
        if not name.startswith(".") and name.endswith(".json"):
            record = read_record(tree, layout.agents / name)
            if record is not None:
                agents.append(agent_from(record))
    agents.sort(key=lambda a: (a.updated_at, a.id), reverse=True)
    return agents[:limit]
