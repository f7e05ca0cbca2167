"""``LLMAgent``: a chat agent whose sessions, history and state live in a store.

Build one with :class:`~mofa.agent.LLMAgentBuilder`. Every turn goes through the agent's
:class:`~mofa.persistence.PersistencePlugin` (an in-memory store when none is given):

1. the user's message is appended to the session *before* the model is called;
2. the prompt is the system prompt plus the session's last ``history_limit`` messages up to
   and including that user message, read from the store (so another process, or another
   handle, continuing the session sees them, and a turn running at the same time cannot slip
   its question in after this one's); records of failed calls are left out, and so are
   earlier user messages that were never answered (their call failed or was interrupted;
   they stay in the store), so a retry is not sent twice; a reply is placed right after the
   question it answers (``reply_to``);
3. the reply is appended *after* the call, with model, provider, token usage and latency in
   its metadata; a failed call appends an error record (a ``system`` message whose metadata
   has ``status: "failed"``) instead; a stream that is cut off appends what arrived, marked
   ``partial: true``. Characters no database can store (NUL, lone UTF-16 surrogates) in a
   reply are replaced with U+FFFD, counted in ``metadata["replaced_characters"]``; a reply the
   store still refuses (too large for the server, say) leaves an error record and raises
   :class:`LLMError` whose ``partial`` holds the reply.

Nothing about a call is kept on the agent, so concurrent ``chat(..., session_id=…)`` calls in
different sessions never share history or usage.

Expiry (``session.ttl_seconds``): a session gets ``expires_at = now + ttl`` when created and
the expiry is pushed forward when less than half the ttl is left after a turn, so an active
conversation stays alive and an idle one expires. An expired session is never continued: it
is marked ``status: "expired"`` in the store; building an agent on it (or chatting on the
current session after it expired) starts a fresh session, while ``switch_session`` to it or
``chat(session_id=…)`` raises :class:`SessionExpiredError`.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import weakref
from collections.abc import AsyncGenerator, AsyncIterator, Mapping
from datetime import datetime, timedelta
from types import TracebackType
from typing import Any, Self

from mofa.agent._errors import AgentClosedError, LLMError, SessionExpiredError
from mofa.agent._turns import (
    ChatTurn,
    OpenTurn,
    StreamCleaner,
    describe,
    elapsed_ms,
    reply_to,
    storable,
)
from mofa.agent.providers import ChatMessage, LLMProvider, Usage
from mofa.persistence._entities import Message, Role, Session, SessionStatus, utc_now
from mofa.persistence.errors import PersistenceError, StoreClosedError
from mofa.persistence.plugin import PersistencePlugin, is_error_record

__all__ = ["DEFAULT_HISTORY_LIMIT", "ChatStream", "ChatTurn", "LLMAgent"]

#: How many of the latest messages of a session are sent to the model.
DEFAULT_HISTORY_LIMIT = 100

_PROMPT_ROLES = (Role.USER, Role.ASSISTANT, Role.SYSTEM)


class ChatStream:
    """The reply of :meth:`LLMAgent.chat_stream`, piece by piece.

    ``async for chunk in stream`` yields text; afterwards :attr:`turn` holds the stored turn.
    Stopping early stores what arrived, marked partial: at once with ``async with`` or
    ``await stream.aclose()``; after a plain ``break``, when asyncio finalizes the dropped
    stream (soon, in a task of its own; ``reply_to`` keeps it paired with its question), and
    at the latest when the agent closes: ``close()`` ends open streams and waits for them.
    """

    def __init__(self, agent: LLMAgent, text: str, session_id: str | None) -> None:
        self.turn: ChatTurn | None = None
        self._generator = agent._stream_turn(text, session_id, self)

    def __aiter__(self) -> AsyncIterator[str]:
        return self

    async def __anext__(self) -> str:
        return await self._generator.__anext__()

    async def aclose(self) -> None:
        await self._generator.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()


class LLMAgent:
    """A conversational agent backed by a store. Build it with ``LLMAgentBuilder``."""

    def __init__(
        self,
        *,
        agent_id: str,
        name: str,
        description: str | None,
        provider: LLMProvider,
        plugin: PersistencePlugin,
        system_prompt: str | None = None,
        history_limit: int = DEFAULT_HISTORY_LIMIT,
        ttl_seconds: int | None = None,
        owns_provider: bool = True,
    ) -> None:
        self.id = agent_id
        self.name = name
        self.description = description
        self.provider = provider
        self.plugin = plugin
        self.system_prompt = system_prompt
        self.history_limit = history_limit
        self.ttl_seconds = ttl_seconds
        self._owns_provider = owns_provider
        self._started_at: datetime = utc_now()
        self._session: Session | None = None
        self._history: tuple[Message, ...] = ()
        self._state: dict[str, Any] = {}
        self._switch_lock = asyncio.Lock()
        #: The providers' streams under way. Held here so that a ``ChatStream`` dropped after
        #: a ``break`` is finalized alone: it closes its provider stream itself (storing the
        #: partial reply) instead of racing asyncio's finalizer closing both at once.
        self._provider_streams: set[AsyncIterator[Any]] = set()
        #: The reply streams handed out and not yet collected, and how many have started
        #: and not yet finished (stored their reply): ``close()`` ends the first and waits
        #: for the second, so a stream dropped after a ``break`` stores its partial reply
        #: before an owned store closes under it.
        self._streams: weakref.WeakSet[ChatStream] = weakref.WeakSet()
        self._streams_open = 0
        self._streams_finished = asyncio.Event()
        self._streams_finished.set()
        self._closed = False
        #: True when the agent continued an existing session at build time.
        self.resumed = False
        #: The session the agent refused to resume because it had expired (else ``None``).
        self.expired_session_id: str | None = None

    def __repr__(self) -> str:
        return (
            f"LLMAgent(id={self.id!r}, provider={self.provider.name!r}, "
            f"model={self.provider.model!r}, session_id={self._session and self.session_id!r})"
        )

    # ------------------------------------------------------------ lifecycle

    async def _start(self, session_id: str | None) -> None:
        """Register the agent, then open (or create) its first session."""
        self._started_at = utc_now()
        await self._register("running")
        if session_id is None:
            await self._activate(await self._new_session(), new=True)
            return
        session = await self.plugin.open_session(session_id, ttl_seconds=self.ttl_seconds)
        if session.effective_status == SessionStatus.EXPIRED:
            await self._replace_expired(session)
        else:
            self.resumed = session.message_count > 0
            await self._activate(session)

    async def _replace_expired(self, expired: Session) -> Session:
        """Record ``expired`` as such and make a new session current in its place."""
        await self._expire(expired)
        self.expired_session_id = expired.session_id
        fresh = await self._new_session()
        await self._activate(fresh, new=True)
        return fresh

    async def close(self) -> None:
        """Record the agent as stopped and release the provider (and an owned store)."""
        if self._closed:
            return
        self._closed = True
        for stream in list(self._streams):
            # RuntimeError: another task is inside the stream right now; it finishes below.
            with contextlib.suppress(RuntimeError):
                await stream.aclose()
        await self._streams_finished.wait()
        try:
            with contextlib.suppress(StoreClosedError):  # closed first: nowhere to record it
                await self._register("stopped")
        finally:
            if self._owns_provider:
                await self.provider.aclose()
            await self.plugin.close()

    async def _register(self, state: str) -> None:
        """Create or update the agent's row, in ``state`` (``running`` / ``stopped``)."""
        await self.plugin.register_agent(
            self.id,
            name=self.name,
            state=state,
            provider=self.provider.name,
            model=self.provider.model,
            description=self.description,
            started_at=self._started_at,
        )

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()

    def _check_open(self) -> None:
        if self._closed:
            raise AgentClosedError(f"The agent {self.id!r} was used after close().")

    # ------------------------------------------------------------ properties

    @property
    def session_id(self) -> str:
        """The current session's id."""
        if self._session is None:
            raise AgentClosedError("The agent has no session yet; build it with build_async().")
        return self._session.session_id

    @property
    def session(self) -> Session | None:
        """The current session as last read from the store."""
        return self._session

    @property
    def history(self) -> tuple[Message, ...]:
        """The current session's latest messages (loaded on build and switch, kept per turn)."""
        return self._history

    @property
    def state(self) -> dict[str, Any]:
        """The current session's agent state (latest snapshot; ``{}`` when none)."""
        return dict(self._state)

    @property
    def model(self) -> str:
        return self.provider.model

    # -------------------------------------------------------------- sessions

    async def create_session(self, *, metadata: Mapping[str, Any] | None = None) -> str:
        """Create a new session in the store and return its id (the current one is kept)."""
        self._check_open()
        session = await self.plugin.create_session(ttl_seconds=self.ttl_seconds, metadata=metadata)
        return session.session_id

    async def switch_session(self, session_id: str) -> Session:
        """Make ``session_id`` current: its history and state are loaded from the store.

        Raises:
            SessionNotFoundError: there is no such session (or it is another tenant's, user's
                or agent's: through the plugin those look missing).
            SessionExpiredError: its ttl has passed.
        """
        self._check_open()
        session = await self._require_live(session_id)
        async with self._switch_lock:
            await self._activate(session)
        return session

    async def list_sessions(self, *, limit: int | None = None) -> list[Session]:
        """This agent's sessions of the plugin's tenant and user, newest first."""
        self._check_open()
        return await self.plugin.list_sessions(limit=limit)

    async def delete_session(self, session_id: str) -> bool:
        """Delete a session with its history and state; deleting the current one starts a new one.

        Returns False when there was no such session.
        """
        self._check_open()
        deleted = await self.plugin.delete_session(session_id)
        if deleted and self._session is not None and str(session_id) == self.session_id:
            async with self._switch_lock:
                await self._activate(await self._new_session(), new=True)
        return deleted

    async def _new_session(self) -> Session:
        return await self.plugin.create_session(ttl_seconds=self.ttl_seconds)

    async def _activate(self, session: Session, *, new: bool = False) -> None:
        """Make ``session`` current with its history and state (none, when it is ``new``)."""
        if new:
            self._session, self._history, self._state = session, (), {}
            return
        history = await self.plugin.load_history(session.session_id, limit=self.history_limit)
        state = await self.plugin.load_state(session.session_id)
        self._session = session
        self._history = tuple(history)
        self._state = {} if state is None else dict(state.state)

    async def _expire(self, session: Session) -> None:
        if session.status != SessionStatus.EXPIRED.value:
            await self.plugin.mark_expired(session.session_id)

    # ----------------------------------------------------------------- state

    async def save_state(self, state: Mapping[str, Any]) -> int:
        """Save a snapshot of the agent's state in the current session; returns its version."""
        self._check_open()
        saved = await self.plugin.save_state(self.session_id, state)
        self._state = dict(saved.state)
        return saved.version

    # ------------------------------------------------------------------ chat

    async def chat(self, text: str, *, session_id: str | None = None) -> str:
        """Send ``text`` and return the reply (in the current session unless one is named).

        Naming a ``session_id`` writes to that session without switching to it; it must exist
        and belong to the plugin's tenant, user and agent (else :class:`SessionNotFoundError`)
        and must not have expired (:class:`SessionExpiredError`).
        A failed call raises :class:`LLMError` after storing an error record.
        """
        return (await self.chat_turn(text, session_id=session_id)).text

    async def chat_turn(self, text: str, *, session_id: str | None = None) -> ChatTurn:
        """Like :meth:`chat`, returning the stored turn with usage and latency."""
        turn = await self._begin_turn(text, session_id)
        started = time.perf_counter()
        try:
            completion = await self.provider.complete(self._prompt(turn))
        except (Exception, asyncio.CancelledError) as exc:
            await self._record_failure(turn, exc, started)
            raise
        content, replaced = storable(completion.content)
        return await self._finish_turn(
            turn,
            content,
            completion.model,
            completion.usage,
            completion.finish_reason,
            started,
            replaced=replaced,
        )

    def chat_stream(self, text: str, *, session_id: str | None = None) -> ChatStream:
        """Send ``text`` and stream the reply: ``async for chunk in agent.chat_stream(…)``."""
        self._check_open()
        stream = ChatStream(self, text, session_id)
        self._streams.add(stream)
        return stream

    async def _stream_turn(
        self, text: str, session_id: str | None, stream: ChatStream
    ) -> AsyncGenerator[str, None]:
        self._streams_open += 1
        self._streams_finished.clear()
        try:
            turn = await self._begin_turn(text, session_id)
            parts: list[str] = []
            cleaner = StreamCleaner()
            model, usage, finish_reason = self.provider.model, None, None
            started = time.perf_counter()
            deltas = self.provider.stream(self._prompt(turn))
            self._provider_streams.add(deltas)
            try:
                async for delta in deltas:
                    model = delta.model or model
                    usage = delta.usage or usage
                    finish_reason = delta.finish_reason or finish_reason
                    piece = cleaner.feed(delta.content) if delta.content else ""
                    if piece:
                        parts.append(piece)
                        yield piece
                piece = cleaner.flush()
                if piece:
                    parts.append(piece)
                    yield piece
            except BaseException as exc:
                # Cut off (LLMError), abandoned by the consumer (GeneratorExit) or cancelled:
                # keep what arrived, or at least a record that the call failed.
                await _aclose(deltas)
                arrived = "".join(parts) + cleaner.flush()
                if arrived:
                    metadata = self._reply_metadata(
                        turn.user_message, model, usage, elapsed_ms(started), finish_reason
                    )
                    metadata.update(partial=True, status="partial", error=describe(exc))
                    if cleaner.replaced:
                        metadata["replaced_characters"] = cleaner.replaced
                    await self._store_reply(turn, arrived, metadata, started)
                else:
                    await self._record_failure(turn, exc, started)
                raise
            finally:
                self._provider_streams.discard(deltas)
            stream.turn = await self._finish_turn(
                turn,
                "".join(parts),
                model,
                usage,
                finish_reason,
                started,
                replaced=cleaner.replaced,
            )
        finally:
            self._streams_open -= 1
            if not self._streams_open:
                self._streams_finished.set()

    async def _begin_turn(self, text: str, session_id: str | None) -> OpenTurn:
        """Store the user's message and read the history the prompt is made of."""
        self._check_open()
        session, current = await self._session_for_call(session_id)
        user_message = await self.plugin.record_user_message(session.session_id, text)
        # The window ends at this turn's own message: a message another turn (or process)
        # appends meanwhile belongs to that turn's prompt, not this one's.
        history = await self.plugin.load_history(
            session.session_id, limit=self.history_limit, up_to_seq=user_message.seq
        )
        return OpenTurn(session, current, user_message, history)

    async def _finish_turn(
        self,
        turn: OpenTurn,
        content: str,
        model: str,
        usage: Usage | None,
        finish_reason: str | None,
        started: float,
        *,
        replaced: int = 0,
    ) -> ChatTurn:
        """Store the reply of a call that started at ``started`` and close the turn."""
        latency = elapsed_ms(started)
        metadata = self._reply_metadata(turn.user_message, model, usage, latency, finish_reason)
        if replaced:
            metadata["replaced_characters"] = replaced
        reply = await self._store_reply(turn, content, metadata, started)
        await self._after_turn(turn, reply)
        return ChatTurn(
            turn.session.session_id, content, model, usage, latency, turn.user_message, reply
        )

    async def _store_reply(
        self, turn: OpenTurn, content: str, metadata: dict[str, Any], started: float
    ) -> Message:
        """Append the (possibly partial) reply; if the store refuses it, append an error
        record instead and raise :class:`LLMError` carrying the reply, so it is not lost."""
        try:
            reply = await self.plugin.record_reply(turn.session.session_id, content, metadata)
        except PersistenceError as exc:
            error = LLMError(
                f"The model answered but the store refused the reply: {str(exc).rstrip('.')}; "
                "the reply is in this error's partial attribute.",
                provider=self.provider.name,
                partial=content,
            )
            # The error record is short plain text: it is stored when the store is still up.
            with contextlib.suppress(PersistenceError):
                await self._record_failure(turn, error, started)
            raise error from exc
        await self._remember(turn, reply)
        return reply

    async def _session_for_call(self, session_id: str | None) -> tuple[Session, bool]:
        """The session a call writes to, and whether it is the current one."""
        if session_id is None or (
            self._session is not None and str(session_id) == self._session.session_id
        ):
            async with self._switch_lock:
                session = self._session
                if session is None:
                    raise AgentClosedError("The agent has no session; build it with build_async().")
                if session.effective_status == SessionStatus.EXPIRED:
                    fresh = await self.plugin.require_session(session.session_id)
                    if fresh.effective_status == SessionStatus.EXPIRED:
                        # The current session ran out while idle: continue in a new one.
                        fresh = await self._replace_expired(fresh)
                    self._session = session = fresh
                return session, True
        return await self._require_live(session_id), False

    async def _require_live(self, session_id: str) -> Session:
        """The session, recorded as expired and refused when its ttl has passed."""
        session = await self.plugin.require_session(session_id)
        if session.effective_status == SessionStatus.EXPIRED:
            await self._expire(session)
            raise SessionExpiredError(session.session_id)
        return session

    def _prompt(self, turn: OpenTurn) -> list[ChatMessage]:
        """The system prompt, then the turn's history as conversation (see the module doc)."""
        own = turn.user_message.seq
        conversation = [
            m for m in turn.history if m.role in _PROMPT_ROLES and not is_error_record(m)
        ]
        questions = {m.seq for m in conversation if m.role == Role.USER}
        answers: dict[int, list[Message]] = {}
        for message in conversation:
            question = reply_to(message)
            if question in questions:
                answers.setdefault(question, []).append(message)
        chosen: list[Message] = []
        for index, message in enumerate(conversation):
            if message.role == Role.USER:
                replies = answers.get(message.seq, [])
                if not replies and message.seq != own:
                    # No reply names it: answered only if an untagged reply follows it.
                    following = conversation[index + 1] if index + 1 < len(conversation) else None
                    if (
                        following is None
                        or following.role != Role.ASSISTANT
                        or reply_to(following) is not None
                    ):
                        continue  # its call failed or was interrupted: never answered
                chosen.append(message)
                chosen.extend(replies)
            elif reply_to(message) not in questions:
                chosen.append(message)
        prompt: list[ChatMessage] = []
        if self.system_prompt:
            prompt.append({"role": "system", "content": self.system_prompt})
        prompt.extend({"role": m.role.value, "content": m.content} for m in chosen)
        return prompt

    def _reply_metadata(
        self,
        user_message: Message,
        model: str,
        usage: Usage | None,
        latency_ms: float,
        finish_reason: str | None,
    ) -> dict[str, Any]:
        return {
            "model": model,
            "provider": self.provider.name,
            "usage": None if usage is None else usage.as_dict(),
            "latency_ms": latency_ms,
            "finish_reason": finish_reason,
            "reply_to": user_message.seq,
        }

    async def _record_failure(self, turn: OpenTurn, exc: BaseException, started: float) -> None:
        metadata: dict[str, Any] = {
            "model": self.provider.model,
            "provider": self.provider.name,
            "latency_ms": elapsed_ms(started),
            "reply_to": turn.user_message.seq,
            "error_type": type(exc).__name__,
        }
        if isinstance(exc, LLMError) and exc.status is not None:
            metadata["http_status"] = exc.status
        if isinstance(exc, LLMError) and exc.retry_after is not None:
            metadata["retry_after"] = exc.retry_after
        await self._remember(
            turn, await self.plugin.record_error(turn.session.session_id, describe(exc), metadata)
        )

    async def _after_turn(self, turn: OpenTurn, reply: Message) -> None:
        session, current = turn.session, turn.current
        if self.ttl_seconds is not None and session.expires_at is not None:
            left = session.expires_at - utc_now()
            if left < timedelta(seconds=self.ttl_seconds / 2):
                session = await self.plugin.extend_session(session.session_id, self.ttl_seconds)
                if (
                    current
                    and self._session is not None
                    and self._session.session_id == session.session_id
                ):
                    self._session = session

    async def _remember(self, turn: OpenTurn, stored: Message) -> None:
        """Keep :attr:`history` equal to the store's last messages after a turn in the current
        session (ended by a reply, a partial reply or an error record)."""
        session = self._session
        if not (
            turn.current and session is not None and session.session_id == turn.session.session_id
        ):
            return
        if stored.seq == turn.user_message.seq + 1 and turn.history[-1:] == [turn.user_message]:
            self._history = (*turn.history, stored)[-self.history_limit :]
        else:  # another turn wrote in between: read what the store holds now
            self._history = tuple(
                await self.plugin.load_history(session.session_id, limit=self.history_limit)
            )


async def _aclose(iterator: AsyncIterator[Any]) -> None:
    close = getattr(iterator, "aclose", None)
    if close is not None:
        # Closing a broken stream must not hide the error that broke it.
        with contextlib.suppress(Exception):
            await close()
