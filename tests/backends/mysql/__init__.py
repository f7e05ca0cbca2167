"""The MySQL/MariaDB store's own tests; ``conftest`` holds what its modules share."""
