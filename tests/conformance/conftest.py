"""The conformance suite runs on every backend and, in addition, on ``pgbouncer`` (the
PostgreSQL store through a private PgBouncer in transaction mode) and ``partitioned``
(PostgreSQL with the three session tables hash-partitioned by session_id); see
``tests/conftest.py``."""

from __future__ import annotations

import pytest

from tests.conftest import CONFORMANCE_BACKENDS, CONFORMANCE_DURABLE_BACKENDS, _params


@pytest.fixture(params=_params(CONFORMANCE_BACKENDS))
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(params=_params(CONFORMANCE_DURABLE_BACKENDS))
def durable_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)
