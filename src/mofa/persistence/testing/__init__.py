"""The store contract's conformance suite, for any backend: this package's and yours.

The tests in :mod:`mofa.persistence.testing.conformance` each take one pytest fixture,
``store``: an open, empty store. The project runs them on all five of its backends; a
third-party store (a subclass of :class:`~mofa.persistence.BaseStore`, or anything that
implements :class:`~mofa.persistence.Store` on the same terms) runs them by giving its own
``store`` fixture and importing the tests into a test module::

    # tests/test_my_store_conformance.py  (pytest and pytest-asyncio, asyncio_mode = "auto")
    import pytest
    from mofa.persistence.testing.conformance import *  # noqa: F403 - the tests themselves

    @pytest.fixture
    async def store():
        opened = await MyStore.connect("mystore://…")   # an empty store for each test
        try:
            yield opened
        finally:
            await opened.close()

What the suite asks, test by test, is what the project's backends guarantee: sessions,
messages and their ``seq``, agent state, owner scopes, values that come back alike, and
times of the years 1 to 9999. It needs pytest and pytest-asyncio (the ``dev`` extra); nothing
here is imported by the library itself.
"""
