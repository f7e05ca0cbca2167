"""The file store's face: :class:`FileStore` opens a directory and runs each call's file work
in a worker thread (one hop per operation), with OS errors translated and a session's writes
serialized in the process by an ``asyncio.Lock`` (``flock()`` serializes them across
processes, in the thread). The work itself is in the modules beside this one; the layout and
what the store promises are in the package's docstring."""

from __future__ import annotations

import asyncio
import errno
import functools
import os
import weakref
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import Any, Self, TypeVar

from mofa.persistence._base import BaseStore, EncodedMessage
from mofa.persistence._checked import SessionQuery
from mofa.persistence._contract import Unset
from mofa.persistence._entities import Agent, AgentState, Message, Owner, Session
from mofa.persistence._restore import ConflictPolicy, RestoreBatch, replaces
from mofa.persistence._url import DatabaseURL, parse_url
from mofa.persistence.backends._toolkit import check_flag, check_option, reject_unknown_options
from mofa.persistence.backends.files._group_commit import Group, GroupCommit
from mofa.persistence.backends.files._layout import Layout
from mofa.persistence.backends.files._listing import SessionList
from mofa.persistence.backends.files._messages import (
    append_groups,
    list_messages,
    list_recent_messages,
    read_states,
    save_state,
)
from mofa.persistence.backends.files._records import list_agents, read_agent, upsert_agent
from mofa.persistence.backends.files._restore import StagedLogs, clear_dead_restores
from mofa.persistence.backends.files._sessions import (
    create_session,
    delete_session,
    get_session,
    update_session,
)
from mofa.persistence.backends.files._tree import FileTree
from mofa.persistence.backends.files._upgrade import prepare
from mofa.persistence.errors import (
    InvalidInputError,
    PermissionDeniedError,
    PersistenceError,
    QueryError,
    SessionNotFoundError,
)
from mofa.persistence.locations import default_data_dir, directory_url

_T = TypeVar("_T")


class FileStore(BaseStore):
    """Keeps everything in files under one directory; safe for several processes at once."""

    backend = "files"

    def __init__(self, url: DatabaseURL, directory: Path, *, max_workers: int = 4) -> None:
        super().__init__(url)
        self._layout = Layout.at(directory)
        # Every file operation below the root goes through the tree.
        self._tree = FileTree(directory, held=("sessions", "agents", "index", "locks"))
        self._executor = ThreadPoolExecutor(
            max_workers=max_workers, thread_name_prefix="mofa-files"
        )
        self._session_list = SessionList(self._tree, self._layout, self._executor)
        self._session_locks: weakref.WeakValueDictionary[str, asyncio.Lock] = (
            weakref.WeakValueDictionary()
        )
        self._appends = GroupCommit()

    @property
    def directory(self) -> Path:
        """The data directory (absolute)."""
        return self._layout.root

    @classmethod
    async def connect(
        cls,
        url: str | DatabaseURL | os.PathLike[str] | None = None,
        *,
        max_workers: int = 4,
        create_schema: bool = True,
        **options: Any,
    ) -> Self:
        """Open (creating if needed) the store in the URL's directory.

        Args:
            url: ``file:///abs/dir`` or ``file://./rel/dir``, a parsed URL, a directory
                path, or ``None`` for :func:`default_data_dir`.
            max_workers: threads doing file work.
            create_schema: False: create and change nothing, and refuse a directory that
                holds no mofa file store with :class:`SchemaError`.
            options: none other; an unknown one raises :class:`InvalidInputError`.
        """
        if url is None:
            url = default_data_dir()
        if isinstance(url, os.PathLike):
            directory = Path(url)
            parsed = parse_url(directory_url(directory))
        else:
            parsed = parse_url(url) if isinstance(url, str) else url
            if parsed.backend != "files" or parsed.path is None:
                raise InvalidInputError(
                    f"FileStore needs a file:// URL, not {parsed.masked!r}; "
                    "use open_store() for other databases."
                )
            directory = Path(parsed.path)
        reject_unknown_options("FileStore", options, ("max_workers", "create_schema"))
        check_flag("create_schema", create_schema)
        check_option("max_workers", max_workers, integer=True, minimum=1)
        directory = directory.expanduser().absolute()
        store = cls(parsed, directory, max_workers=max_workers)
        try:
            applied, listed = await store._run(prepare, store._tree, store._layout, create_schema)
        except BaseException:
            store._executor.shutdown(wait=False)
            store._tree.close()
            raise
        store.applied_migrations = applied
        store._session_list.listed = listed
        if create_schema:  # a store opened to write: what a killed restore left goes
            await store._run(clear_dead_restores, store._tree, store._layout)
        return store

    # ---------------------------------------------------------------- plumbing

    async def _run(self, function: Callable[..., _T], *args: Any) -> _T:
        """Run blocking file work in a worker thread, translating OS errors."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(
            self._executor, functools.partial(self._translated, function, *args)
        )

    def _translated(self, function: Callable[..., _T], *args: Any) -> _T:
        began = self._tree.begin_call()
        try:
            return function(*args)
        except PersistenceError:
            raise
        except (KeyError, TypeError, ValueError) as exc:
            raise QueryError(
                f"The file store in {self.directory} holds a damaged file ({exc!r}); "
                "restore it from a backup."
            ) from exc
        except PermissionError as exc:
            raise PermissionDeniedError(
                f"The file store cannot access {exc.filename or self.directory}: "
                f"permission denied; check the owner and mode of {self.directory}."
            ) from exc
        except OSError as exc:
            where = exc.filename or self.directory
            if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                raise QueryError(
                    f"The file store could not write to {where}: the disk is full; "
                    "free some space and retry."
                ) from exc
            raise QueryError(f"The file store failed on {where}: {exc.strerror or exc}.") from exc
        finally:
            self._tree.end_call(began)

    def _lock_for(self, session_id: str) -> asyncio.Lock:
        lock = self._session_locks.get(session_id)
        if lock is None:
            lock = asyncio.Lock()
            self._session_locks[session_id] = lock
        return lock

    async def _run_locked(self, session_id: str, function: Callable[..., _T], *args: Any) -> _T:
        """Run a write with the session's asyncio lock held (flock is taken in the thread)."""
        lock = self._lock_for(session_id)
        async with lock:
            return await self._run(function, *args)

    async def _close(self) -> None:
        # Appends already accepted finish (and are acknowledged) before the threads stop.
        await self._appends.wait()
        await asyncio.to_thread(self._executor.shutdown, True)
        self._tree.close()

    # ---------------------------------------------------------------- agents

    async def _upsert_agent(self, agent: Agent, owner: Owner | None) -> Agent:
        return await self._run(upsert_agent, self._tree, self._layout, agent, owner)

    async def _get_agent(self, agent_id: str) -> Agent | None:
        return await self._run(read_agent, self._tree, self._layout, agent_id)

    async def _list_agents(self, limit: int | None) -> list[Agent]:
        return await self._run(list_agents, self._tree, self._layout, limit)

    # ---------------------------------------------------------------- sessions

    async def _create_session(self, session: Session, metadata_json: str) -> Session:
        return await self._run_locked(
            session.session_id, create_session, self._tree, self._layout, session, metadata_json
        )

    async def _get_session(self, session_id: str, owner: Owner | None) -> Session | None:
        return await self._run(get_session, self._tree, self._layout, session_id, owner)

    async def _list_sessions(self, query: SessionQuery, owner: Owner | None) -> list[Session]:
        return await self._run(self._session_list.list_sessions, query, owner)

    async def _update_session(
        self,
        session_id: str,
        status: str | None,
        metadata_json: str | None,
        expires_at: datetime | Unset | None,
        now: datetime,
        owner: Owner | None,
    ) -> Session:
        return await self._run_locked(
            session_id,
            update_session,
            self._tree,
            self._layout,
            session_id,
            status,
            metadata_json,
            expires_at,
            now,
            owner,
        )

    async def _delete_session(self, session_id: str, owner: Owner | None) -> bool:
        return await self._run_locked(
            session_id, delete_session, self._tree, self._layout, session_id, owner
        )

    # ---------------------------------------------------------------- messages

    async def _append_messages(
        self,
        session_id: str,
        messages: list[EncodedMessage],
        now: datetime,
        owner: Owner | None,
    ) -> list[Message]:
        return await self._appends.append(session_id, messages, now, owner, self._write_groups)

    async def _write_groups(
        self, session_id: str, groups: list[Group]
    ) -> list[list[Message] | SessionNotFoundError]:
        """One group write of the session's pending appends (see :class:`GroupCommit`)."""
        return await self._run_locked(
            session_id, append_groups, self._tree, self._layout, session_id, groups
        )

    async def _list_messages(
        self, session_id: str, limit: int | None, after_seq: int, owner: Owner | None
    ) -> list[Message]:
        return await self._run(
            list_messages, self._tree, self._layout, session_id, limit, after_seq, owner
        )

    async def _list_recent_messages(
        self, session_id: str, limit: int, owner: Owner | None
    ) -> list[Message]:
        return await self._run(
            list_recent_messages, self._tree, self._layout, session_id, limit, owner
        )

    # ---------------------------------------------------------------- agent state

    async def _save_state(
        self,
        session_id: str,
        state: dict[str, Any],
        state_json: str,
        now: datetime,
        owner: Owner | None,
    ) -> AgentState:
        version = await self._run_locked(
            session_id, save_state, self._tree, self._layout, session_id, state_json, now, owner
        )
        return AgentState(session_id, version, state, now)

    async def _get_state(
        self, session_id: str, version: int | None, owner: Owner | None
    ) -> AgentState | None:
        states = await self._run(
            read_states, self._tree, self._layout, session_id, version, 1, owner
        )
        return states[0] if states else None

    async def _list_states(
        self, session_id: str, limit: int | None, owner: Owner | None
    ) -> list[AgentState]:
        return await self._run(
            read_states, self._tree, self._layout, session_id, None, limit, owner
        )

    # --------------------------------------------------------------- restore

    async def _restore_session(
        self,
        session: Session,
        metadata_json: str,
        agent: Agent | None,
        batches: AsyncIterator[RestoreBatch],
        on_conflict: ConflictPolicy,
        owner: Owner | None,
    ) -> Session | None:
        if on_conflict != "replace" or owner is not None:  # early (the commit checks again)
            found = await self._run(get_session, self._tree, self._layout, session.session_id, None)
            if found is not None:
                held_by = (found.tenant_id, found.user_id, found.agent_id)
                if not replaces(session.session_id, on_conflict, owner, held_by):
                    return None
        await self._run(clear_dead_restores, self._tree, self._layout)
        staged = StagedLogs(self._tree, self._layout, session)
        try:
            await self._run(staged.open)
            async for batch in batches:
                await self._run(staged.write, batch)
            return await self._run_locked(
                session.session_id, staged.commit, metadata_json, agent, on_conflict, owner
            )
        finally:
            await self._run(staged.discard)
