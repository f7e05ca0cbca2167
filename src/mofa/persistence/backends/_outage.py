"""One log line per outage of a store's server, not one per failed call.

Usage (in a server backend)::

    outage = OutageLog(logging.getLogger(__name__), "PostgreSQL at 127.0.0.1:5432")
    ...
    outage.failed(error, detail, cause)  # each call that could not reach the server
    outage.answered()                    # each call that succeeded

A store whose server goes away keeps getting calls, each failing with
:class:`~mofa.persistence.errors.StoreConnectionError` for its caller to handle. The log says
so once: one WARNING when the first call fails to reach the server, one INFO when a call
succeeds again; each failure's traceback goes to DEBUG. The records go to the ``mofa.*``
loggers, which have a :class:`logging.NullHandler` (see :mod:`mofa`), so an application that
configured no logging prints nothing.
"""

from __future__ import annotations

import logging

from mofa.persistence.errors import PersistenceError, StoreConnectionError

__all__ = ["OutageLog"]


class OutageLog:
    """Whether a store's server is unreachable, logged on each change."""

    __slots__ = ("_logger", "_server", "down")

    def __init__(self, logger: logging.Logger, server: str) -> None:
        """``server``: how the log names it, e.g. ``"PostgreSQL at 127.0.0.1:5432"``."""
        self._logger = logger
        self._server = server
        self.down = False

    def failed(self, error: PersistenceError, detail: str, cause: BaseException) -> None:
        """A call failed with ``error`` (translated from the driver's ``cause``, which
        ``detail`` sums up). Only a plain :class:`StoreConnectionError` means the server
        could not be reached; a wrong password or a missing database is not an outage."""
        if type(error) is not StoreConnectionError:
            return
        if not self.down:
            self.down = True
            self._logger.warning(
                "%s is unreachable: %s; calls fail until it answers again (each one tries "
                "to reconnect)",
                self._server,
                detail,
            )
        self._logger.debug("%s: a call failed", self._server, exc_info=cause)

    def answered(self) -> None:
        """A call succeeded."""
        if self.down:
            self.down = False
            self._logger.info("%s answers again", self._server)
