"""The conformance tests of export and import, run on every backend of the project (their
code lives in mofa.persistence.testing, where a third-party backend can run them too)."""

from mofa.persistence.testing.conformance.transfer import *  # noqa: F403
