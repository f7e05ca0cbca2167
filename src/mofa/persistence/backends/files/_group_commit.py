"""Group commit for the file store's message appends, on the event loop: appends to one
session that arrive while a write for it is in flight are written together by the next one
(one write, one fdatasync); each caller still returns only after its own bytes are on disk,
with its own result (its messages, or the error its owner scope got).

What a write does is the store's (:func:`._messages.append_groups`, in a worker thread);
only the batching lives here.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from mofa.persistence._base import EncodedMessage
from mofa.persistence._entities import Message, Owner
from mofa.persistence.errors import SessionNotFoundError

#: One caller's batch as a write takes it: its messages, the call's time, its owner scope.
Group = tuple[Sequence[EncodedMessage], datetime, Owner | None]
#: Writes one session's groups in one write: a result per group, in order.
WriteGroups = Callable[[str, list[Group]], Awaitable[list[list[Message] | SessionNotFoundError]]]


@dataclass(slots=True)
class _PendingAppend:
    """One caller's batch waiting for the session's next group write."""

    messages: list[EncodedMessage]
    now: datetime
    owner: Owner | None
    future: asyncio.Future[list[Message]]


class GroupCommit:
    """The appends waiting for each session's next write, and the tasks writing them."""

    def __init__(self) -> None:
        self._pending: dict[str, list[_PendingAppend]] = {}
        self._flushing: set[str] = set()
        self._flush_tasks: set[asyncio.Task[None]] = set()

    async def append(
        self,
        session_id: str,
        messages: list[EncodedMessage],
        now: datetime,
        owner: Owner | None,
        write: WriteGroups,
    ) -> list[Message]:
        """Append ``messages`` with the session's next ``write`` (the store's, given on each
        call so that this object holds no reference back to the store)."""
        # Group commit: appends that arrive while a write for this session is in flight are
        # written together by the next one (one write, one fdatasync); each still returns
        # only after its own bytes are on disk. Each keeps its owner: the write checks it.
        loop = asyncio.get_running_loop()
        pending = _PendingAppend(messages, now, owner, loop.create_future())
        self._pending.setdefault(session_id, []).append(pending)
        if session_id not in self._flushing:
            self._flushing.add(session_id)
            task = loop.create_task(self._flush(session_id, write))
            self._flush_tasks.add(task)
            task.add_done_callback(self._flush_tasks.discard)
        return await pending.future

    async def wait(self) -> None:
        """Return once every append accepted so far is written (and acknowledged)."""
        while self._flush_tasks:
            await asyncio.gather(*self._flush_tasks, return_exceptions=True)

    async def _flush(self, session_id: str, write: WriteGroups) -> None:
        queue: list[_PendingAppend] = []
        try:
            while True:
                queue = [
                    item
                    for item in self._pending.pop(session_id, [])
                    if not item.future.cancelled()
                ]
                if not queue:  # nothing new arrived during the last write
                    return
                try:
                    results = await write(
                        session_id, [(item.messages, item.now, item.owner) for item in queue]
                    )
                except Exception as exc:
                    for item in queue:
                        if not item.future.done():
                            item.future.set_exception(exc)
                    continue
                for item, result in zip(queue, results, strict=True):
                    if item.future.done():
                        continue
                    if isinstance(result, SessionNotFoundError):  # refused by its owner scope
                        item.future.set_exception(result)
                    else:
                        item.future.set_result(result)
                queue = []
        finally:
            self._flushing.discard(session_id)
            # Only reached early if this task itself was cancelled: do not leave callers hanging.
            for item in [*queue, *self._pending.pop(session_id, [])]:
                item.future.cancel()
