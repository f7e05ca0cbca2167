"""The pruning conformance tests, run on every backend of the project (their code lives in
mofa.persistence.testing)."""

from mofa.persistence.testing.conformance.pruning import *  # noqa: F403
