"""The contract conformance tests of ownership, run on every backend of the project (their code
lives in mofa.persistence.testing, where a third-party backend can run them too)."""

from mofa.persistence.testing.conformance.ownership import *  # noqa: F403
