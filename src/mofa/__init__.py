"""mofa-sdk: persistence for AI agents.

Sessions, conversation history and agent state, saved to PostgreSQL, MySQL/MariaDB,
SQLite, local files or memory. See :mod:`mofa.persistence` for the store contract.

The package logs through the ``mofa`` logger and its children (``mofa.persistence…``): a
server that stops answering is one WARNING, the tracebacks are DEBUG. As the standard library
recommends for a library, ``mofa`` has only a :class:`logging.NullHandler` (attached by
:mod:`mofa.persistence`, the package that logs, so that ``mofa --version`` need not load
:mod:`logging`), and nothing is printed until the application configures logging.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
