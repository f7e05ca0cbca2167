"""mofa-sdk: persistence for AI agents.

Sessions, conversation history and agent state, saved to PostgreSQL, MySQL/MariaDB,
SQLite, local files or memory. See :mod:`mofa.persistence` for the store contract.

The package logs through the ``mofa`` logger and its children (``mofa.persistence…``): a
server that stops answering is one WARNING, the tracebacks are DEBUG. As the standard library
recommends for a library, ``mofa`` has only a :class:`logging.NullHandler`, so nothing is
printed until the application configures logging.
"""

import logging

__version__ = "0.1.0"

# A library leaves logging to its application (the standard library's advice): without a
# handler configured, mofa's records go nowhere instead of to Python's last-resort stderr.
logging.getLogger(__name__).addHandler(logging.NullHandler())

__all__ = ["__version__"]

logging.getLogger(__name__).addHandler(logging.NullHandler())
