"""The listing conformance tests (status and time filters), run on every backend of the
project (their code lives in mofa.persistence.testing)."""

from mofa.persistence.testing.conformance.listing import *  # noqa: F403
