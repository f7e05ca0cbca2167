"""What one chat turn leaves behind, and how a reply is made storable.

:class:`ChatTurn` is the outcome a caller gets; ``OpenTurn`` is a turn between its stored
question and its stored reply. A reply's text is cleaned of what no database stores (NUL,
lone UTF-16 surrogates) before it is stored, a whole reply at once or a stream piece by piece.
"""

from __future__ import annotations

import asyncio
import re
import time
from dataclasses import dataclass

from mofa.agent.providers import Usage
from mofa.persistence._entities import Message, Role, Session

__all__ = [
    "ChatTurn",
    "OpenTurn",
    "StreamCleaner",
    "describe",
    "elapsed_ms",
    "reply_to",
    "storable",
]

#: A UTF-16 surrogate pair (joined into one character), or a character no database stores.
_UNSTORABLE_RE = re.compile("([\ud800-\udbff][\udc00-\udfff])|[\x00\ud800-\udfff]")


def storable(text: str) -> tuple[str, int]:
    """``text`` with NUL and lone surrogates replaced by U+FFFD (surrogate pairs, as a JSON
    decoder can leave them, joined), and how many characters were replaced."""
    if text.isascii() and "\x00" not in text:
        return text, 0
    replaced = 0

    def fix(match: re.Match[str]) -> str:
        nonlocal replaced
        if match.group(1):
            return match.group(1).encode("utf-16-le", "surrogatepass").decode("utf-16-le")
        replaced += 1
        return "\ufffd"

    return _UNSTORABLE_RE.sub(fix, text), replaced


class StreamCleaner:
    """Applies :func:`storable` to a stream's pieces, holding back a high surrogate that
    ends a piece in case the next piece starts with its pair."""

    def __init__(self) -> None:
        self.replaced = 0
        self._held = ""

    def feed(self, piece: str) -> str:
        piece = self._held + piece
        self._held = ""
        if piece and "\ud800" <= piece[-1] <= "\udbff":
            piece, self._held = piece[:-1], piece[-1]
        text, replaced = storable(piece)
        self.replaced += replaced
        return text

    def flush(self) -> str:
        held, self._held = self._held, ""
        return self.feed(held) if held else ""


@dataclass(frozen=True, slots=True)
class ChatTurn:
    """The outcome of one turn: the reply and the two stored messages."""

    session_id: str
    text: str
    model: str
    usage: Usage | None
    latency_ms: float
    user_message: Message
    reply_message: Message


@dataclass(frozen=True, slots=True)
class OpenTurn:
    """A turn between its stored user message and its stored reply."""

    session: Session
    #: Whether ``session`` is the agent's current session.
    current: bool
    user_message: Message
    #: The latest messages, the user's included: what the prompt is made of.
    history: list[Message]


def reply_to(message: Message) -> int | None:
    """The seq of the question an assistant message answers, when its metadata says so."""
    if message.role != Role.ASSISTANT:
        return None
    value = message.metadata.get("reply_to")
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def elapsed_ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 1)


def describe(exc: BaseException) -> str:
    if isinstance(exc, GeneratorExit):
        return "The reader stopped the stream before it finished."
    if isinstance(exc, asyncio.CancelledError):
        return "The call was cancelled."
    return str(exc) or type(exc).__name__
