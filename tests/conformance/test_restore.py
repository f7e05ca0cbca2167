"""The contract conformance tests of restore_session, run on every backend of the project
(their code lives in mofa.persistence.testing, where a third-party backend can run them too)."""

from mofa.persistence.testing.conformance.restore import *  # noqa: F403
