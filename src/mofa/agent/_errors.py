"""Errors raised by :mod:`mofa.agent`.

::

    AgentError                 anything the agent reports (besides store errors)
    ├── LLMError               the model call failed (HTTP status, server message, timeout)
    ├── SessionExpiredError    the session's ttl has passed; it is not resumed
    └── AgentClosedError       the agent was used after ``close()``

Store failures stay :class:`mofa.persistence.PersistenceError`; a session of another tenant,
user or agent reads as missing (:class:`mofa.persistence.SessionNotFoundError`).
"""

from __future__ import annotations

__all__ = ["AgentClosedError", "AgentError", "LLMError", "SessionExpiredError"]


class AgentError(Exception):
    """Base class of the agent's own errors."""


class LLMError(AgentError):
    """A call to the language model failed.

    Attributes:
        status: the HTTP status the server answered, or ``None`` (timeout, connection, cut stream).
        provider: the provider's name ("openai", "offline", …).
        partial: the text that had arrived before a stream failed, or the whole reply when
            the model answered but the store refused the reply ("" if none).
        retry_after: seconds the server asked to wait before retrying (its ``Retry-After``
            header, e.g. on 429 or 503), or ``None``.
    """

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        provider: str = "",
        partial: str = "",
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.provider = provider
        self.partial = partial
        self.retry_after = retry_after


class SessionExpiredError(AgentError):
    """The session's time to live has passed; it is kept for reading but not continued."""

    def __init__(self, session_id: str) -> None:
        super().__init__(
            f"Session {session_id!r} has expired; start a new one with create_session()."
        )
        self.session_id = session_id


class AgentClosedError(AgentError):
    """The agent was used after ``close()``."""
