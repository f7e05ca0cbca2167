"""A store the registry does not know runs the whole conformance suite the way the
documentation of mofa.persistence.testing tells a third party to: its own ``store``
fixture, and the tests imported in one line."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from mofa.persistence import InMemoryStore, parse_url
from mofa.persistence.testing.conformance import *  # noqa: F403


class ThirdPartyStore(InMemoryStore):
    """Stands for an outside backend: a class of its own, opened without the registry."""

    backend = "third-party"


@pytest.fixture
async def store() -> AsyncIterator[ThirdPartyStore]:
    opened = ThirdPartyStore(parse_url("memory://"))
    try:
        yield opened
    finally:
        await opened.close()


def test_the_whole_suite_is_collected_here() -> None:
    # The imported tests are this module's own: pytest collects them with the fixture above.
    from mofa.persistence.testing import conformance

    suite = {name for name in vars(conformance) if name.startswith("test_")}
    assert len(suite) > 40
    assert suite <= set(globals())
