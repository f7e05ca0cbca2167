"""Backends: the only modules that import a database driver (each one lazily)."""
