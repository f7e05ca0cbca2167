"""mofa-sdk: persistence for AI agents.

Sessions, conversation history and agent state, saved to PostgreSQL, MySQL/MariaDB,
SQLite, local files or memory. See :mod:`mofa.persistence` for the store contract.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
