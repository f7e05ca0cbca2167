"""The contract conformance tests of state, run on every backend of the project (their code
lives in mofa.persistence.testing, where a third-party backend can run them too)."""

from mofa.persistence.testing.conformance.state import *  # noqa: F403
