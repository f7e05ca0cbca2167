"""What holds for the project's own backends, beyond the contract a third party meets."""

from __future__ import annotations

from mofa.persistence import BaseStore
from mofa.persistence._registry import record_for


async def test_the_store_is_the_backend_its_url_names(store: BaseStore) -> None:
    assert store.url.backend == store.backend
    assert type(store).__name__ == record_for(store.backend).class_name
