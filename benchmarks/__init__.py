"""The project's benchmarks: the mofa stores against their raw drivers (see README.md)."""
